"""MNIST: 28x28 digit images as 784 pixels scaled to [0, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xpnet.data.digits import mnist_like, read_grayscale
from xpnet.data.mnist import load_mnist
from xpnet.tasks import TaskData

PREPROCESSING = {"type": "mnist", "scale": 255.0}
CLASS_NAMES = [str(digit) for digit in range(10)]


def load_task(data_dir: str | None, download: bool = True) -> TaskData:
    """MNIST from ``data_dir`` (default: the per-user cache, downloading what is missing)."""
    data = load_mnist(data_dir, download=download)
    scale = np.float32(PREPROCESSING["scale"])
    return TaskData(
        data.x_train / scale, data.y_train, data.x_test / scale, data.y_test, CLASS_NAMES, dict(PREPROCESSING),
        image_shape=(28, 28, 1),
    )


def image_features(preprocessing: dict[str, Any], paths: list[Path]) -> np.ndarray:
    """Digit images of any size, converted like MNIST's and scaled as in training."""
    pixels = np.stack([mnist_like(read_grayscale(path), path) for path in paths])
    return pixels / np.float32(preprocessing.get("scale", 255.0))
