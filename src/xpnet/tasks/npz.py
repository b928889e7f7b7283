"""The npz job, your own arrays: an ``.npz`` file with ``x`` (samples, features) or images (samples, height,
width[, channels]), ``y`` class labels (whole numbers or text), and optionally ``x_test``, ``y_test``. Features are
standardised per column (per channel for images) with the training samples' statistics, saved in the model.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.data.table import label_key, sort_classes
from xpnet.errors import ConfigError, DataError
from xpnet.scaling import RunningStats, Standardizer
from xpnet.tasks.base import TEST_FRACTION, EvalData, Task, refuse_images
from xpnet.tasks.common import TaskData, check_classes, cnn_defaults, holdout_split, mlp_defaults

if TYPE_CHECKING:
    from xpnet.backend import Backend
    from xpnet.model import Model


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (never unpickling); DataError saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such .npz file; check the path")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is a single .npy array, not an .npz archive of x and y arrays")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
            zipfile.LargeZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc.__class__.__name__}: {exc}); save the arrays "
                        "with numpy.savez (no Python objects)") from None


def _samples(arrays: dict[str, np.ndarray], name: str, path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``arrays[name]`` as float samples (n, ...), checked: numbers, finite, of the per-sample ``shape``."""
    x = arrays[name]
    if x.dtype.kind not in "fiub" or x.ndim < 2 or x.ndim > 4 or x.shape[0] == 0 or 0 in x.shape:
        raise DataError(f"{path}: {name} is {x.dtype} of shape {x.shape}; give numbers of shape (samples, features)"
                        " or images (samples, height, width[, channels])")
    if shape is not None and x.shape[1:] != shape:
        raise DataError(f"{path}: {name} has samples of shape {x.shape[1:]}, but the model's are {shape}")
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)) if x.dtype.kind == "f" else []
    if len(bad):
        raise DataError(f"{path}: {name}[{bad[0]}] holds NaN or infinite values; clean or drop that sample")
    return x


def _labels(arrays: dict[str, np.ndarray], name: str, path: Path, count: int) -> list[str]:
    y = arrays[name]
    if y.ndim != 1 or len(y) != count or y.dtype.kind not in "iubfUS":
        raise DataError(f"{path}: {name} is {y.dtype} of shape {y.shape}; give {count} class labels (whole numbers "
                        "or text), one per sample")
    return [label_key(str(v.decode(errors="replace") if isinstance(v, bytes) else v)) for v in y.tolist()]


def _grouped(x: np.ndarray) -> np.ndarray:
    """Samples with the axis the scaling is learned per last: columns of rows, channels of images."""
    return x[..., None] if x.ndim == 3 else x


def _indices(keys: list[str], names: list[str], path: Path, name: str) -> np.ndarray:
    known = {key: index for index, key in enumerate(names)}
    for position, key in enumerate(keys):
        if key not in known:
            raise DataError(f"{path}: {name}[{position}] is label {key!r}, which is not among the training labels "
                            f"({', '.join(names)})")
    return np.fromiter((known[key] for key in keys), np.int64, len(keys))


def load_task(path: str | os.PathLike, *, test_fraction: float | None = None, seed: int = 0) -> TaskData:
    """Training and test samples of an ``.npz`` file, scaled with the training samples' statistics."""
    path = Path(path)
    arrays = read_arrays(path)
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise DataError(f"{path} has no array {missing[0]!r} (it holds {', '.join(sorted(arrays)) or 'nothing'}); "
                        "give x (samples, features) and y (labels), and optionally x_test and y_test")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: give both x_test and y_test, or neither")
    if "x_test" in arrays and test_fraction is not None:
        raise ConfigError(f"{path} has x_test and y_test: leave out --test-fraction")
    x = _samples(arrays, "x", path)
    keys = _labels(arrays, "y", path, len(x))
    names = sort_classes(sorted(set(keys)))
    y = _indices(keys, names, path, "y")
    if "x_test" in arrays:
        x_test = _samples(arrays, "x_test", path, x.shape[1:])
        y_test = _indices(_labels(arrays, "y_test", path, len(x_test)), names, path, "y_test")
        test_name = "test"
    else:
        check_classes(y, names, path)
        held = holdout_split(y, names, test_fraction, seed, path)
        x, x_test, y, y_test = x[~held], x[held], y[~held], y[held]
        test_name = "held-out"
    check_classes(y, names, path)
    scaler = Standardizer.from_stats(RunningStats().update(_grouped(x)))
    image = _grouped(x).shape[1:] if x.ndim > 2 else None
    preprocessing = {"type": "arrays", "job": "npz", "shape": list(x.shape[1:]), "scaling": scaler.to_dict()}
    return TaskData(scaler.transform(_grouped(x)), y, scaler.transform(_grouped(x_test)), y_test, names,
                    preprocessing, test_name=test_name, image_shape=image)


def read_samples(preprocessing: dict[str, Any], class_names: Sequence[str], path: str | os.PathLike,
                 labelled: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The samples of an ``.npz`` file (``x_test`` or else ``x``) prepared as the model's training prepared them,
    and their labels (``y_test`` or ``y``; None when absent); a label the model never saw is a DataError."""
    path = Path(path)
    arrays = read_arrays(path)
    name = "x_test" if "x_test" in arrays else "x"
    if name not in arrays:
        raise DataError(f"{path} has no array 'x' or 'x_test' to predict on")
    shape = tuple(int(v) for v in preprocessing.get("shape", []))
    x = _samples(arrays, name, path, shape)
    label = name.replace("x", "y", 1)
    if labelled and label not in arrays:
        raise DataError(f"{path} has {name} but no {label}: evaluating needs the true labels")
    y = _indices(_labels(arrays, label, path, len(x)), list(class_names), path, label) if label in arrays else None
    return Standardizer.from_dict(preprocessing.get("scaling")).transform(_grouped(x)), y


class NpzTask(Task):
    name = "npz"
    source = "an .npz file (x, y, optional x_test, y_test)"
    defaults = {"mlp": mlp_defaults(20, 32, "128,64"), "cnn": cnn_defaults(64)}
    options = (TEST_FRACTION,)
    inputs = "files"
    preprocessing_types = ("arrays",)

    def load(self, args: argparse.Namespace, backend: Backend, seed: int) -> TaskData:
        return load_task(args.source, test_fraction=args.test_fraction, seed=seed)

    def test_data(self, model: Model, data: str | None, data_dir: str | None) -> EvalData:
        return EvalData(*read_samples(model.preprocessing, model.class_names, str(data), labelled=True))

    def predict_features(self, model: Model, path: Path) -> tuple[list[str], Any]:
        refuse_images(self, path, ".npz samples")
        x, _ = read_samples(model.preprocessing, model.class_names, path)
        return [f"{path} row {k}" for k in range(1, len(x) + 1)], x


TASK = NpzTask()
