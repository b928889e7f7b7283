"""The training charts: readable curves for long runs, a hue chart scaled past the background's spike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xpnet import plotting


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plotting functions draw, kept instead of being written."""
    kept: list = []
    monkeypatch.setattr(plotting, "_save", lambda figure, path: kept.append(figure) or Path(path))
    return kept


@pytest.mark.parametrize(("epochs", "marker"), [(5, "o"), (60, "None")])
def test_long_runs_are_plain_lines(figures: list, epochs: int, marker: str) -> None:
    curve = list(np.linspace(1, 0.1, epochs))
    plotting.plot_history({"loss": curve, "accuracy": curve, "val_loss": curve, "val_accuracy": curve}, "c.png")
    lines = [line for axis in figures[0].axes for line in axis.get_lines()]
    assert len(lines) == 4 and {line.get_marker() for line in lines} == {marker}
    assert {line.get_label() for line in lines} == {"training", "validation"}


def test_a_regression_history_plots_the_mean_absolute_error(figures: list) -> None:
    plotting.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "val_mae": [0.9, 0.5]}, "c.png")
    assert figures[0].axes[1].get_ylabel() == "mae" and len(figures[0].axes[1].get_lines()) == 1


def test_the_hue_chart_has_a_title_and_is_scaled_past_the_hue_0_spike(figures: list) -> None:
    histograms = np.full((6, 360), 10.0)
    histograms[:, 0] = 5000.0  # grey and white background pixels
    histograms[:3, 30] = 80.0
    plotting.plot_class_histograms(histograms, np.array([0, 0, 0, 1, 1, 1]), ["a", "b"], "h.png")
    axis = figures[0].axes[0]
    assert axis.get_title() and 80 < axis.get_ylim()[1] < 200
    assert any("off the scale" in text.get_text() for text in axis.texts)
