"""The mnist job: MNIST's 28x28 digit images as 784 pixels scaled to [0, 1]; predicts on digit images of any
size (see ``xpnet.data.digits``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.data.digits import mnist_like, read_grayscale
from xpnet.data.mnist import load_mnist
from xpnet.tasks.base import DATA_DIR, EvalData, Option, Task
from xpnet.tasks.common import TaskData, cnn_defaults, mlp_defaults

if TYPE_CHECKING:
    from xpnet.backend import Backend
    from xpnet.model import Model

PREPROCESSING = {"type": "mnist", "job": "mnist", "scale": 255.0}
CLASS_NAMES = [str(digit) for digit in range(10)]


def preprocessing() -> dict[str, Any]:
    """The preprocessing of an MNIST digit model, for a model built in Python (``mlp(...,
    preprocessing=xpnet.tasks.mnist.preprocessing())``, or ``model.preprocessing = ...`` before ``model.save``):
    with it, ``xpnet predict`` and ``xpnet evaluate`` can use the saved model. Its inputs are 784 pixels in [0, 1]."""
    return dict(PREPROCESSING)


def load_task(data_dir: str | None, download: bool = True) -> TaskData:
    """MNIST from ``data_dir`` (default: the per-user cache, downloading what is missing)."""
    data = load_mnist(data_dir, download=download)
    scale = np.float32(PREPROCESSING["scale"])
    return TaskData(
        data.x_train / scale, data.y_train, data.x_test / scale, data.y_test, CLASS_NAMES, preprocessing(),
        image_shape=(28, 28, 1),
    )


def image_features(preprocessing: dict[str, Any], paths: list[Path]) -> np.ndarray:
    """Digit images of any size, converted like MNIST's and scaled as in training."""
    pixels = np.stack([mnist_like(read_grayscale(path), path) for path in paths])
    return pixels / np.float32(preprocessing.get("scale", 255.0))


class MnistTask(Task):
    name = "mnist"
    defaults = {"mlp": mlp_defaults(10, 128, "512,256"), "cnn": cnn_defaults(128, shift=2)}
    default_recipes = {"cnn": "cnn"}  # the plain network ended under 99.45%: --recipe none still trains it
    options = (DATA_DIR, Option("no_download", "never download MNIST; fail if it is missing",
                                {"action": "store_true"}))
    preprocessing_types = ("mnist",)

    def load(self, args: argparse.Namespace, backend: Backend, seed: int) -> TaskData:
        return load_task(args.data_dir, download=not args.no_download)

    def test_data(self, model: Model, data: str | None, data_dir: str | None) -> EvalData:
        task = load_task(data_dir, download=False)
        return EvalData(task.x_test, task.y_test, task.test_name)

    def predict_features(self, model: Model, path: Path) -> tuple[list[str], Any]:
        return [str(path)], image_features(model.preprocessing, [path])


TASK = MnistTask()
