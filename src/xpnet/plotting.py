"""PNG charts of training runs (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.errors import ConfigError
from xpnet.fileio import atomic_write


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'xpnet[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FORMATS = {"": "png", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}
"""The chart formats by file suffix (none: PNG)."""

TITLE_WIDTH = 100
"""Characters per line of a chart title: a longer title (a CNN's layers) wraps instead of widening the figure."""


def check_plot_path(path: str | Path) -> str:
    """The format a chart at ``path`` is written in (its suffix names it); ConfigError for a suffix with no format,
    or when matplotlib is missing: checked before training, so that a run never ends without its charts."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--plot {path}: cannot write {suffix} charts; give a file ending in "
                          f"{', '.join(s for s in FORMATS if s)}")
    _pyplot()
    return FORMATS[suffix]


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    image_format = check_plot_path(path)
    with atomic_write(path) as handle:
        figure.savefig(handle, format=image_format, dpi=120, bbox_inches="tight")
    figure.clf()
    return path


MARKED_EPOCHS = 20
"""Curves of up to this many epochs mark each epoch's point; longer ones are plain lines."""


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy (a regression model: mean absolute error) per epoch, training and validation."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    marker = "o" if len(epochs) <= MARKED_EPOCHS else None
    second = "accuracy" if "accuracy" in history else "mae"
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, second)):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if key in history:
                axis.plot(epochs, history[key], marker=marker, markersize=4, label=label)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs: no 1.25
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(textwrap.fill(title, TITLE_WIDTH))
    figure.tight_layout()
    return _save(figure, path)


def plot_class_histograms(
    histograms: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path
) -> Path:
    """The mean hue histogram of each class, one line per class. The scale is set by the hues above 0: hue 0 also
    counts every grey and white pixel (the photos' background), a spike that would flatten the rest."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(10, 4))
    bins = np.arange(histograms.shape[1])
    means = np.stack([histograms[labels == k].mean(axis=0) for k in range(len(class_names))])
    for k, name in enumerate(class_names):
        axis.plot(bins, means[k], label=name)
    top = 1.1 * float(means[:, 1:].max()) if means.shape[1] > 1 else 0.0
    if top > 0 and means[:, 0].max() > top:
        axis.set_ylim(0, top)
        axis.annotate(f"hue 0 (grey and white pixels) up to {means[:, 0].max():,.0f}, off the scale",
                      xy=(0, top), xytext=(8, -14), textcoords="offset points", fontsize=8)
    axis.set_xlabel("hue (degrees)")
    axis.set_ylabel("mean pixel count")
    axis.set_title("Mean hue histogram of each class (training images)")
    axis.legend()
    return _save(figure, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted class) with counts in the cells."""
    plt = _pyplot()
    side = min(1.2 * len(class_names) + 2, 8.0)  # 4 classes: 6.8 inches; 10 digits: 8
    figure, axis = plt.subplots(figsize=(side, side - 1))
    axis.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    for (i, j), count in np.ndenumerate(matrix):  # light text on the dark cells, dark text on the light ones
        color = "white" if count > matrix.max() / 2 else "black"
        axis.text(j, i, str(count), ha="center", va="center", color=color)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return _save(figure, path)
