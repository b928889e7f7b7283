"""The jobs the command line trains: each turns a data folder into features and labels, and images into features.

A task's ``preprocessing`` dict is saved in the model, so that ``xpnet predict`` and ``xpnet evaluate`` prepare
new inputs exactly as training did, whichever task the model came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.errors import ModelFileError


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
