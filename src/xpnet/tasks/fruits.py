"""The fruits job: hue histograms of fruit photos, with the bins that vary over the training images kept.

Training uses ``Training/`` and tests on ``Test/`` when the folder has one; otherwise a stratified, seeded
20% of each class is held out, and the split is saved in the model's preprocessing so that ``xpnet evaluate``
rebuilds the same held-out images.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.data.fruits import SPLIT_FOLDERS, load_fruits, read_images
from xpnet.data.mnist import default_data_dir
from xpnet.errors import ConfigError, DataError
from xpnet.features import CACHE_SIZE, HueHistogramFeatures, cached_histograms, hue_histograms
from xpnet.kernels.hue import DEFAULT_BINS
from xpnet.tasks.base import CLASSES, DATA_DIR, EvalData, Task, chart_path, class_list
from xpnet.tasks.common import HOLDOUT_FRACTION, TaskData, holdout_split, mlp_defaults

if TYPE_CHECKING:
    from xpnet.backend import Backend
    from xpnet.model import Model

DATASET_FOLDER = "fruits-360"
"""The dataset's folder name, looked for inside a general data folder such as ``$XPNET_DATA``."""


def _dataset_dir(data_dir: str | os.PathLike) -> Path:
    """``data_dir``, or its ``fruits-360`` subfolder when it has no ``Training/`` but holds one."""
    root = Path(data_dir).expanduser()
    if not (root / SPLIT_FOLDERS["train"]).is_dir() and (root / DATASET_FOLDER).is_dir():
        return root / DATASET_FOLDER
    return root


def _histograms(paths: Sequence[Path], backend: Backend) -> tuple[np.ndarray, np.ndarray]:
    """Cached hue histograms of ``paths`` and the indices of the images that could be read."""
    hist, kept = cached_histograms(
        paths, default_data_dir() / "features", backend, bins=DEFAULT_BINS, size=CACHE_SIZE
    )
    return hist, np.asarray(kept, dtype=np.int64)


def split_images(
    splits: dict[str, Any], holdout: dict[str, Any] | None
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """All image paths, their labels, and which are test images: ``Test/``'s, or the held-out ones."""
    train = splits["train"]
    if "test" in splits:
        test = splits["test"]
        is_test = np.r_[np.zeros(len(train), dtype=bool), np.ones(len(test), dtype=bool)]
        return train.paths + test.paths, np.r_[train.labels, test.labels], is_test
    if holdout is None:
        raise DataError(
            "the data folder has no Test/ split, and the model saved no held-out split to test on"
        )
    mask = holdout_split(train.labels, train.class_names, holdout["fraction"], holdout["seed"], "the image folder")
    return train.paths, train.labels, mask


def load_task(data_dir: str | os.PathLike, classes: Sequence[str] | None, backend: Backend, seed: int = 0) -> TaskData:
    """Hue-histogram features of ``classes`` in a Fruits-360 folder, selected and standardised on training.

    The histograms are computed on ``backend`` and cached under ``$XPNET_DATA/features``.
    """
    splits = load_fruits(_dataset_dir(data_dir), classes)
    if len(splits["train"].class_names) < 2:
        raise DataError(f"a classifier needs at least two classes; only {splits['train'].class_names[0]!r} was "
                        "found or asked for", hint="name two or more class folders with --classes")
    holdout = None if "test" in splits else {"fraction": HOLDOUT_FRACTION, "seed": seed}
    paths, labels, is_test = split_images(splits, holdout)
    hist, kept = _histograms(paths, backend)
    labels, is_test = labels[kept], is_test[kept]
    features = HueHistogramFeatures().fit(hist[~is_test])
    x = features.transform(hist).astype(np.float32)
    class_names = splits["train"].class_names
    preprocessing = {
        "type": "hue_histogram",
        "job": "fruits",
        "bins": DEFAULT_BINS,
        "size": list(CACHE_SIZE),
        "selector": features.to_dict(),
        "holdout": holdout,
        "classes": class_names,
    }
    return TaskData(
        x[~is_test], labels[~is_test], x[is_test], labels[is_test], class_names, preprocessing,
        test_name="held-out" if holdout else "test", extras={"train_histograms": hist[~is_test]},
    )


def evaluation_task(data_dir: str | os.PathLike, model: Model) -> TaskData:
    """The test images of a saved fruit model (``Test/``, or its held-out split) as its features."""
    preprocessing = model.preprocessing
    splits = load_fruits(_dataset_dir(data_dir), model.class_names)
    holdout = None if "test" in splits else preprocessing.get("holdout")
    paths, labels, is_test = split_images(splits, holdout)
    test_paths = [path for path, test in zip(paths, is_test, strict=True) if test]
    hist, kept = _histograms(test_paths, model.backend)
    features = HueHistogramFeatures.from_dict(preprocessing.get("selector", {}))
    x_test = features.transform(hist).astype(np.float32)
    empty = np.empty((0, x_test.shape[1]), dtype=np.float32)
    return TaskData(
        empty, np.empty(0, dtype=np.int64), x_test, labels[is_test][kept], splits["train"].class_names,
        dict(preprocessing), test_name="held-out" if holdout else "test",
    )


def image_features(preprocessing: dict[str, Any], paths: Sequence[Path], backend: Backend) -> np.ndarray:
    """Features of fruit photos, prepared as in training; an unreadable file is a DataError naming it."""
    size = tuple(preprocessing.get("size", CACHE_SIZE))
    images = read_images(paths, "rgb", size)
    hist = hue_histograms(images, backend, int(preprocessing.get("bins", DEFAULT_BINS)))
    features = HueHistogramFeatures.from_dict(preprocessing.get("selector", {}))
    return backend.to_host(features.transform(hist)).astype(np.float32)


class FruitsTask(Task):
    name = "fruits"
    defaults = {"mlp": mlp_defaults(60, 32, "150,60", validation_split=0.15)}
    options = (DATA_DIR, CLASSES)
    preprocessing_types = ("hue_histogram",)

    def load(self, args: argparse.Namespace, backend: Backend, seed: int) -> TaskData:
        if not args.data_dir:
            raise ConfigError("xpnet train fruits needs --data-dir: a Fruits-360 folder (with Training/, maybe Test/)")
        return load_task(args.data_dir, class_list(args.classes), backend, seed=seed)

    def test_data(self, model: Model, data: str | None, data_dir: str | None) -> EvalData:
        if not data_dir:
            raise ConfigError("evaluating a fruit model needs --data-dir, the Fruits-360 folder it was trained on")
        task = evaluation_task(data_dir, model)
        return EvalData(task.x_test, task.y_test, task.test_name)

    def predict_features(self, model: Model, path: Path) -> tuple[list[str], Any]:
        return [str(path)], image_features(model.preprocessing, [path], model.backend)

    def charts(self, data: TaskData, path: Path) -> list[Path]:
        """The mean training hue histogram of each class, as ``<stem>-hues``."""
        from xpnet.plotting import plot_class_histograms

        return [plot_class_histograms(data.extras["train_histograms"], data.y_train, data.class_names,
                                      chart_path(path, "hues"))]


TASK = FruitsTask()
