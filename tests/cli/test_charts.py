"""The `--plot` charts: whole-number epoch ticks, and a long title (a CNN's layers) wrapped instead of widening
the figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from xpnet import plotting


@pytest.mark.parametrize("epochs", [1, 4])
def test_epoch_ticks_are_whole_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epochs: int) -> None:
    kept: list = []
    monkeypatch.setattr(plotting, "_save", lambda figure, path: kept.append(figure) or Path(path))
    curve = [1.0 / (k + 1) for k in range(epochs)]
    plotting.plot_history({"loss": curve, "accuracy": curve}, tmp_path / "c.png")
    kept[0].canvas.draw()
    for axis in kept[0].axes:
        lo, hi = axis.get_xlim()
        ticks = [tick for tick in axis.get_xticks() if lo <= tick <= hi]
        assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


def test_a_long_title_wraps_instead_of_widening_the_figure(tmp_path: Path) -> None:
    title = "xpnet mnist: " + ", ".join(f"Conv2D(32, 3, activation='relu') #{k}" for k in range(12))
    path = plotting.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]}, tmp_path / "c.png", title)
    width, _ = Image.open(path).size
    assert width <= 10 * 120 + 100, width  # the 10-inch figure at 120 dpi, with tight margins
