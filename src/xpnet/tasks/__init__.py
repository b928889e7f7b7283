"""The jobs the command line trains: each turns a data folder into features and labels, and images into features.

A task's ``preprocessing`` dict is saved in the model, so that ``xpnet predict`` and ``xpnet evaluate`` prepare
new inputs exactly as training did, whichever task the model came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.errors import ConfigError, ModelFileError

MODEL_KINDS = ("mlp", "cnn")

TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "mnist": {
        "mlp": {"epochs": 10, "batch_size": 128, "hidden": "512,256", "activation": "relu", "optimizer": "adam",
                "lr": 1e-3, "dropout": 0.0, "validation_split": 0.1},
        "cnn": {"epochs": 12, "batch_size": 128, "hidden": "128", "activation": "relu", "optimizer": "adam",
                "lr": 1e-3, "dropout": 0.25, "filters": "32,64", "validation_split": 0.1},
    },
    "fruits": {
        "mlp": {"epochs": 60, "batch_size": 32, "hidden": "150,60", "activation": "relu", "optimizer": "adam",
                "lr": 1e-3, "dropout": 0.0, "validation_split": 0.15},
    },
}
"""What `xpnet train TASK --model KIND` uses for every setting the command line leaves out."""

IMAGE_SHAPES = {"mnist": (28, 28, 1)}
"""The image shape behind a task's flat feature rows, for the tasks a convolutional network can learn."""


@dataclass
class TaskData:
    """Training and test features with integer labels, ready for ``Model.fit``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    preprocessing: dict[str, Any]
    test_name: str = "test"
    extras: dict[str, Any] = field(default_factory=dict)


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the samples held out, chosen with ``seed``: ``fraction`` of each class (at least one), apportioned
    so that ``round(fraction * len(labels))`` are held out in all (10% of MNIST's 60,000 is 6,000, which leaves a
    training set that 2, 3, 4, 5, 6 or 8 data-parallel ranks can share)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = fraction * counts
    take = np.floor(quotas).astype(np.int64)
    extra = round(fraction * len(labels)) - int(take.sum())  # to the classes with the largest remainders
    take[np.argsort(take - quotas, kind="stable")[:max(extra, 0)]] += 1
    mask = np.zeros(len(labels), dtype=bool)
    for label, count in zip(classes, np.maximum(take, 1), strict=True):
        mask[rng.permutation(np.flatnonzero(labels == label))[:count]] = True
    return mask


def validation_split(task: TaskData, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """The training features and labels left after holding out ``fraction`` of each class (seeded: the same split on
    every device and on resume), and the held-out ``(x, y)`` for per-epoch validation (None when ``fraction`` is 0)."""
    if not fraction:
        return task.x_train, task.y_train, None
    held = holdout_mask(task.y_train, fraction, seed)
    return task.x_train[~held], task.y_train[~held], (task.x_train[held], task.y_train[held])


def plot_charts(task: TaskData, model: Any, plot_path: str | Path) -> list[Path]:
    """The charts beside the training curves at ``plot_path``: ``<stem>-confusion.png`` (the model on the test
    set), and the task's own (fruits: ``<stem>-hues.png``)."""
    from xpnet.plotting import plot_confusion

    path = Path(plot_path)
    k = len(task.class_names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (task.y_test, model.predict(task.x_test)), 1)
    written = [plot_confusion(matrix, task.class_names, path.with_name(f"{path.stem}-confusion.png"),
                              f"confusion matrix: the {len(task.y_test)} {task.test_name} images")]
    if task.preprocessing.get("type") == "hue_histogram":
        from xpnet.tasks import fruits

        written.append(fruits.plot_hues(task, path.with_name(f"{path.stem}-hues.png")))
    return written


def image_features(preprocessing: dict[str, Any], paths: list[Path], backend: Any) -> np.ndarray:
    """Features for image files, prepared as the model's ``preprocessing`` says (MNIST pixels or hue bins)."""
    kind = preprocessing.get("type")
    if kind == "mnist":
        from xpnet.tasks import mnist

        return mnist.image_features(preprocessing, paths)
    if kind == "hue_histogram":
        from xpnet.tasks import fruits

        return fruits.image_features(preprocessing, paths, backend)
    raise ModelFileError(
        f"this model has no known image preprocessing (type {kind!r}); it was not trained by `xpnet train`, "
        "so give it features from Python with Model.predict"
    )


def sizes(text: str, what: str) -> list[int]:
    """Comma-separated positive layer sizes ("512,256"), or a ConfigError naming the setting ``what``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()] if text.strip() else []
    except ValueError:
        raise ConfigError(f"{what} {text!r}: give comma-separated sizes, for example 512,256") from None
    if any(value < 1 for value in values):
        raise ConfigError(f"{what} {text!r}: sizes must be positive")
    return values


def build_model(task_name: str, task: TaskData, settings: dict[str, Any], backend: Any) -> Any:
    """The model `xpnet train` trains on ``task``: an MLP over its features, or (``settings["model"]`` "cnn") a
    convolutional network over its images, with the settings' sizes, activation, dropout and optimizer."""
    from xpnet.builders import cnn, mlp

    kind = settings.get("model", "mlp")
    options = {"optimizer": settings["optimizer"], "lr": settings["lr"], "backend": backend,
               "class_names": task.class_names, "preprocessing": task.preprocessing}
    hidden = sizes(settings["hidden"], "--hidden")
    if kind == "mlp":
        return mlp([task.x_train.shape[1], *hidden, len(task.class_names)], settings["activation"], "softmax",
                   dropout=settings["dropout"], **options)
    if kind != "cnn" or task_name not in IMAGE_SHAPES:
        raise ConfigError(f"the {task_name} job trains on {'hue histograms' if task_name == 'fruits' else 'features'},"
                          " not images: it has no convolutional model; use --model mlp")
    if len(hidden) != 1 or settings["activation"] != "relu":
        raise ConfigError("the convolutional model has one ReLU hidden Dense layer: give --hidden as one size")
    return cnn(IMAGE_SHAPES[task_name], len(task.class_names), filters=sizes(settings["filters"], "--filters"),
               dense=hidden[0], dropout=settings["dropout"], **options)
