"""What every task shares: the ``TaskData`` a task loads, the per-model-kind default settings, the seeded
holdout and validation splits, and the model ``xpnet train`` builds from a task's data.

A task's ``preprocessing`` dict is saved in the model, so that ``xpnet predict`` and ``xpnet evaluate`` prepare
new inputs exactly as training did, whichever task the model came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xpnet.errors import ConfigError, DataError

MODEL_KINDS = ("mlp", "cnn")

_COMMON = {"activation": "relu", "optimizer": "adam", "lr": 1e-3, "dropout": 0.0, "validation_split": 0.1}


def mlp_defaults(epochs: int, batch_size: int, hidden: str, **overrides: Any) -> dict[str, Any]:
    """A task's settings for ``--model mlp``: its epochs, batch size and hidden sizes over the common ones."""
    return {**_COMMON, "epochs": epochs, "batch_size": batch_size, "hidden": hidden, **overrides}


def cnn_defaults(batch_size: int, shift: int = 0) -> dict[str, Any]:
    """The convolutional network of every image job: 32,64 3x3 filters, a 128-unit layer, dropout 0.25, random
    shifts of up to ``shift`` pixels."""
    return {**_COMMON, "epochs": 12, "batch_size": batch_size, "hidden": "128", "dropout": 0.25, "filters": "32,64",
            "shift": shift}


ADDED_SETTINGS = {"shift": 0, "recipe": None, "weight_decay": None, "label_smoothing": 0.0, "clip_norm": None,
                  "max_norm": None, "warmup": 0}
"""Settings newer than some saved runs, with the value those runs had: a checkpoint without one ran with this."""

HOLDOUT_FRACTION = 0.2
"""Share of each class held out for testing when the data has no test split of its own."""

@dataclass
class TaskData:
    """Training and test features with integer labels, ready for ``Model.fit``: arrays, or (for data larger than
    memory) ``x_*`` a ``ChunkedData`` read a chunk at a time and ``y_*`` None. ``image_shape`` is the
    (height, width, channels) image behind each flat feature row, for the tasks a convolutional network can learn."""

    x_train: Any
    y_train: np.ndarray | None
    x_test: Any
    y_test: np.ndarray | None
    class_names: list[str]
    preprocessing: dict[str, Any]
    test_name: str = "test"
    extras: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, int, int] | None = None

    @property
    def features(self) -> int:
        """The width of a feature row."""
        return int(self.x_train.features if self.y_train is None else self.x_train.shape[1])


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
    every device and on resume), and the held-out ``(x, y)`` for per-epoch validation (None when ``fraction`` is 0,
    or when the training data is streamed in chunks)."""
    if not fraction or task.y_train is None:  # streamed training data: no per-epoch validation, the test set at the end
        return task.x_train, task.y_train, None
    held = holdout_mask(task.y_train, fraction, seed)
    return task.x_train[~held], task.y_train[~held], (task.x_train[held], task.y_train[held])


def check_training_left(task: TaskData, fraction: float, seed: int, source: str) -> None:
    """DataError, before a model is built, when holding out ``fraction`` of each class for validation would leave a
    class of the training set with no sample to train on (a tiny data set after its test split)."""
    if not fraction or task.y_train is None:
        return
    held = holdout_mask(task.y_train, fraction, seed)
    kept = np.bincount(task.y_train[~held], minlength=len(task.class_names))
    present = np.bincount(task.y_train, minlength=len(task.class_names)) > 0
    if (kept[present] == 0).any():
        name = task.class_names[int(np.flatnonzero(present & (kept == 0))[0])]
        raise DataError(f"{source}: too few samples for the test and validation split: {len(task.y_train)} are "
                        f"left for training, and holding out {fraction:g} of each class for validation leaves class "
                        f"{name!r} none", hint="give more samples, or --validation-split 0")


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
    convolutional network over its images, with the settings' sizes, activation, dropout, random shifts and
    optimizer."""
    from xpnet.builders import cnn, mlp
    from xpnet.losses import get_loss
    from xpnet.model import Model
    from xpnet.recipes import Spec, get_recipe

    kind = settings.get("model", "mlp")
    options = {"optimizer": training_optimizer(settings), "backend": backend, "class_names": task.class_names,
               "preprocessing": task.preprocessing,
               "loss": get_loss("categorical_crossentropy", label_smoothing=settings.get("label_smoothing", 0.0))}
    hidden = sizes(settings["hidden"], "--hidden")
    if settings.get("recipe"):
        if task.image_shape is None:
            raise ConfigError(f"--recipe trains on images; the {task_name} job has none")
        if settings["activation"] != "relu":
            raise ConfigError(f"--activation {settings['activation']}: the {settings['recipe']} recipe's network "
                              "uses ReLU; leave --activation out")
        spec = Spec(hidden, sizes(settings.get("filters", ""), "--filters"), settings["dropout"],
                    settings.get("shift", 0), task.image_shape, len(task.class_names))
        return Model(get_recipe(settings["recipe"]).layers(spec), input_shape=task.features, **options)
    if kind == "mlp":
        return mlp([task.features, *hidden, len(task.class_names)], settings["activation"], "softmax",
                   dropout=settings["dropout"], **options)
    if kind != "cnn" or task.image_shape is None:
        learns = "hue histograms" if task.preprocessing.get("type") == "hue_histogram" else "feature rows"
        raise ConfigError(f"the {task_name} job trains on {learns}, not images: it has no convolutional model; "
                          "use --model mlp")
    if len(hidden) != 1 or settings["activation"] != "relu":
        raise ConfigError("the convolutional model has one ReLU hidden Dense layer: give --hidden as one size")
    shift = settings.get("shift", ADDED_SETTINGS["shift"])
    height, width, _ = task.image_shape
    if shift >= min(height, width):
        raise ConfigError(f"--shift {shift}: must be smaller than the {height}x{width} images")
    return cnn(task.image_shape, len(task.class_names), filters=sizes(settings["filters"], "--filters"),
               dense=hidden[0], dropout=settings["dropout"], shift=shift, **options)


def training_optimizer(settings: dict[str, Any]) -> Any:
    """The optimizer of a run's settings: its name and base rate, with the weight decay (None: the optimizer's
    default), gradient-norm clipping and max-norm they hold (the run sets the schedule)."""
    from xpnet.optimizers import get_optimizer

    options = {key: settings[key] for key in ("weight_decay", "clip_norm", "max_norm") if settings.get(key) is not None}
    return get_optimizer(settings["optimizer"], settings["lr"], **options)


def check_classes(labels: np.ndarray, class_names: list[str], source: Any) -> None:
    """DataError unless the training labels hold at least two classes: a classifier needs something to tell
    apart."""
    present = np.unique(labels)
    if len(present) < 2:
        only = f" (only {class_names[int(present[0])]!r})" if len(present) else ""
        raise DataError(f"{source}: the training data has {len(present)} class{only}; a classifier needs at least "
                        "2 classes")


def holdout_split(labels: np.ndarray, class_names: list[str], fraction: float | None, seed: int, source: Any
                  ) -> np.ndarray:
    """True for the samples held out for testing: ``fraction`` (None: ``HOLDOUT_FRACTION``) of each class, seeded
    (see ``holdout_mask``); DataError when a class has too few samples to give some to both sides."""
    fraction = HOLDOUT_FRACTION if fraction is None else fraction
    if not 0 < fraction < 1:
        raise ConfigError(f"--test-fraction {fraction}: must be between 0 and 1")
    counts = np.bincount(labels, minlength=len(class_names))
    if counts.min() < 2:
        name = class_names[int(counts.argmin())]
        raise DataError(f"{source}: class {name!r} has {counts.min()} sample(s); holding out test samples needs "
                        "at least 2 per class (or give a separate test set)")
    return holdout_mask(labels, fraction, seed)


def confusion_matrix(model: Any, x: Any, y: np.ndarray | None, classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) over ``x``, ``y`` (or ``x`` a ChunkedData, ``y`` None)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for features, labels in [(x, y)] if y is not None else x:
        np.add.at(matrix, (labels, model.predict(features, names=False)), 1)
    return matrix
