"""The images job, your own image folder: one subfolder of images per class (or ``Training/`` and ``Test/``
holding them), grey or RGB, resized to ``size`` (or all of one size), as pixels standardised per channel with the
training images' statistics (for an MLP or a CNN), or as the fruit tutorial's hue histograms of any folder.

Every image is decoded once before training, so an unreadable one is an error before anything is written; when
the images do not fit the memory bound, the decoded images (or histograms) go to a spill on disk, read back a
chunk at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.data.chunks import MAX_CHUNK, ChunkReader, Spill, chunk_bounds, samples_in_memory
from xpnet.data.fruits import IMAGE_MODES, class_folders, find_split_dirs, load_fruits, read_image, read_images
from xpnet.errors import ConfigError, DataError
from xpnet.features import CACHE_SIZE, HueHistogramFeatures, hue_histograms
from xpnet.kernels.hue import DEFAULT_BINS
from xpnet.scaling import RunningStats, Standardizer
from xpnet.tasks.base import (
    CLASSES,
    MAX_IN_MEMORY,
    TEST_FRACTION,
    EvalData,
    Option,
    Task,
    check_max_in_memory,
    class_list,
)
from xpnet.tasks.common import HOLDOUT_FRACTION, TaskData, check_classes, cnn_defaults, mlp_defaults
from xpnet.tasks.fruits import split_images

if TYPE_CHECKING:
    from xpnet.backend import Backend
    from xpnet.model import Model

IMAGE_FEATURES = ("pixels", "hue")
"""What `xpnet train images` learns from: standardised pixels, or the fruit tutorial's hue histograms."""


def folder_fingerprint(paths: Sequence[Path]) -> str:
    """A digest of the class folders' image files (class, name, size): the same folder (moved or copied) gives the
    same one, so ``xpnet evaluate`` can tell the folder a model was trained on, and score only its held-out part."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: (p.parent.name, p.name)):
        digest.update(f"{path.parent.name}/{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()

def parse_size(text: str | None) -> tuple[int, int] | None:
    """``--size HxW`` ("64x48") as (height, width)."""
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: give the height and width in pixels as HxW, for example 64x64") from None
    if height < 1 or width < 1:
        raise ConfigError(f"--size {text!r}: the height and width must be positive")
    return height, width


@dataclass
class _Features:
    """How decoded images become features: ``raw`` (what the statistics are gathered on, per last axis), the
    scaling learned from them, and the saved preprocessing."""

    raw: Callable[[np.ndarray], np.ndarray]
    fit: Callable[[RunningStats], Callable[[np.ndarray], np.ndarray]]
    preprocessing: Callable[[], dict[str, Any]]


def _pixel_features(color: str, size: tuple[int, int]) -> _Features:
    fitted: list[Standardizer] = []

    def fit(stats: RunningStats) -> Callable[[np.ndarray], np.ndarray]:
        fitted.append(Standardizer.from_stats(stats))
        return fitted[0].transform

    return _Features(lambda images: images, fit, lambda: {
        "type": "image_pixels", "size": list(size), "color": color, "scaling": fitted[0].to_dict()})


def _hue_features(size: tuple[int, int], backend: Backend) -> _Features:
    selector = HueHistogramFeatures()

    def raw(images: np.ndarray) -> np.ndarray:
        return np.asarray(backend.to_host(hue_histograms(images, backend, DEFAULT_BINS)))

    def fit(stats: RunningStats) -> Callable[[np.ndarray], np.ndarray]:
        selector.fit_stats(stats)
        return lambda hist: selector.transform(hist).astype(np.float32)

    return _Features(raw, fit, lambda: {
        "type": "hue_histogram", "bins": DEFAULT_BINS, "size": list(size), "selector": selector.to_dict()})


def _image_list(folder: Path, classes: Sequence[str] | None, holdout: dict[str, Any] | None
                ) -> tuple[list[Path], np.ndarray, np.ndarray, list[str], dict[str, Any] | None]:
    """The folder's image paths, labels, which are test images (``Test/``'s or held out), the class names and the
    holdout used (None with a Test/ folder)."""
    splits = find_split_dirs(folder)
    names = list(classes) if classes else class_folders(splits["train"])
    image_sets = load_fruits(folder, names)
    holdout = None if "test" in image_sets else holdout
    paths, labels, is_test = split_images(image_sets, holdout)
    return paths, labels, is_test, names, holdout


def load_task(
    folder: str | os.PathLike,
    backend: Backend,
    *,
    size: tuple[int, int] | None = None,
    color: str = "rgb",
    features: str = "pixels",
    classes: Sequence[str] | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    max_in_memory: int | None = None,
) -> TaskData:
    """Training and test features of an image folder, scaled with the training images' statistics."""
    if features not in IMAGE_FEATURES:
        raise ConfigError(f"--features {features!r}: choose {' or '.join(IMAGE_FEATURES)}")
    root = Path(folder)
    holdout = {"fraction": HOLDOUT_FRACTION if test_fraction is None else test_fraction, "seed": seed}
    paths, labels, is_test, names, holdout = _image_list(root, classes, holdout)
    if holdout is None and test_fraction is not None:
        raise ConfigError(f"{root} has a Test/ folder to test on: leave out --test-fraction")
    check_classes(labels[~is_test], names, root)
    if features == "hue":
        size = size or CACHE_SIZE
        color = "rgb"
    first = read_image(paths[0], color, size)
    like = (paths[0], first.shape)
    image_size = first.shape[:2]
    job = _pixel_features(color, image_size) if features == "pixels" else _hue_features(image_size, backend)
    budget = samples_in_memory(max_in_memory, first.size if features == "pixels" else DEFAULT_BINS)
    chunk = min(budget, MAX_CHUNK)
    stats, raws, spill = RunningStats(), [], None if len(paths) <= budget else Spill()
    for lo, hi in chunk_bounds(len(paths), chunk):  # every image decoded once: errors come before training
        raw = job.raw(read_images(paths[lo:hi], color, size, like))
        stats.update(raw[~is_test[lo:hi]])
        if spill is None:
            raws.append(raw)
        else:
            spill.append(raw)
    transform = job.fit(stats)
    width = transform(job.raw(first[None])).shape[1]
    preprocessing = {**job.preprocessing(), "job": "images", "classes": names, "holdout": holdout}
    if holdout is not None:
        preprocessing["folder"] = folder_fingerprint(paths)
    image_shape = first.shape if features == "pixels" else None
    every = np.concatenate(raws) if spill is None else None
    del raws  # the images are in ``every`` now

    def part(chosen: np.ndarray) -> tuple[Any, np.ndarray | None]:
        if spill is not None:
            return spill.select(labels, chosen, transform, width), None
        return transform(every[chosen]), labels[chosen]

    x_train, y_train = part(~is_test)
    x_test, y_test = part(is_test)
    return TaskData(x_train, y_train, x_test, y_test, names, preprocessing,
                    test_name="held-out" if holdout else "test", image_shape=image_shape)


def _chunks(paths: list[Path], labels: np.ndarray, chunk: int, featurize: Callable[[list[Path]], np.ndarray],
            width: int) -> ChunkReader:
    """Images decoded and turned into features ``chunk`` at a time."""
    bounds = chunk_bounds(len(paths), chunk)

    def read(index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = bounds[index]
        return featurize(paths[lo:hi]), labels[lo:hi]

    return ChunkReader([hi - lo for lo, hi in bounds], width, read)


def _transform(preprocessing: dict[str, Any]) -> tuple[Callable[[Sequence[Path]], np.ndarray], int]:
    """Image files to features as a saved pixel model's training prepared them, and the feature width."""
    try:
        size = tuple(int(v) for v in preprocessing["size"])
        color = str(preprocessing["color"])
        channels = IMAGE_MODES[color][1]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"the model's image settings are malformed ({exc!r}); train it again") from None
    scaler = Standardizer.from_dict(preprocessing.get("scaling"))
    return (lambda paths: scaler.transform(read_images(paths, color, size))), size[0] * size[1] * channels


def _hue_transform(preprocessing: dict[str, Any], backend: Backend
                   ) -> tuple[Callable[[Sequence[Path]], np.ndarray], int]:
    """Image files to features as a saved hue-histogram model's training prepared them, and the feature width."""
    from xpnet.tasks.fruits import image_features as hue_features

    width = HueHistogramFeatures.from_dict(preprocessing.get("selector", {})).n_features
    return (lambda paths: hue_features(preprocessing, paths, backend)), width


def image_features(preprocessing: dict[str, Any], paths: Sequence[Path]) -> np.ndarray:
    """Features of image files (any size: resized) for a pixel model, prepared as in training."""
    return _transform(preprocessing)[0](paths)


def evaluation_data(folder: str | os.PathLike, preprocessing: dict[str, Any], class_names: Sequence[str],
                    backend: Backend, max_in_memory: int | None = None) -> TaskData:
    """The test images of an image folder for a saved model, a chunk at a time: its ``Test/`` folder; the held-out
    images when it is the folder the model was trained on; otherwise every image. A class folder the model never
    saw is a DataError."""
    root = Path(folder)
    dirs = find_split_dirs(root)
    split_dir = dirs.get("test", dirs["train"])
    unknown = sorted(set(class_folders(split_dir)) - set(class_names))
    if unknown:
        raise DataError(f"{split_dir / unknown[0]}: class {unknown[0]!r} is not one of the model's classes "
                        f"({', '.join(class_names)}); the model cannot be tested on it")
    image_sets = load_fruits(root, list(class_names))
    train = image_sets["train"]
    trained_here = preprocessing.get("folder", "") in ("", folder_fingerprint(train.paths))  # "": older models
    if "test" in image_sets:
        paths, labels, is_test = split_images(image_sets, None)
        name = "test"
    elif trained_here:
        paths, labels, is_test = split_images(image_sets, preprocessing.get("holdout"))
        name = "held-out"
    else:
        paths, labels, is_test, name = train.paths, train.labels, np.ones(len(train.paths), dtype=bool), "test"
    featurize, width = (_hue_transform(preprocessing, backend) if preprocessing.get("type") == "hue_histogram"
                        else _transform(preprocessing))
    budget = samples_in_memory(max_in_memory, width)
    test = _chunks([paths[k] for k in np.flatnonzero(is_test)], labels[is_test], min(budget, MAX_CHUNK),
                   featurize, width)
    return TaskData(np.empty((0, width), np.float32), np.empty(0, np.int64), test, None, list(class_names),
                    dict(preprocessing), test_name=name)


class ImagesTask(Task):
    name = "images"
    source = "a folder of class folders (or of Training/ and Test/)"
    defaults = {"mlp": mlp_defaults(30, 32, "128,64"), "cnn": cnn_defaults(32)}
    options = (
        Option("size", "images: resize every image to HxW pixels (default: all images must have one size; hue: "
               "100x100)", {"metavar": "HxW"}),
        Option("color", "images: rgb (default) or grey pixels", {"choices": IMAGE_MODES}),
        Option("features", "images: pixels (default; mlp or cnn) or hue: the fruit tutorial's hue histograms",
               {"choices": IMAGE_FEATURES}),
        CLASSES, TEST_FRACTION, MAX_IN_MEMORY,
    )

    def check(self, args: argparse.Namespace) -> None:
        if args.features == "hue" and args.color == "grey":
            raise ConfigError("--features hue reads colour: leave out --color grey")
        check_max_in_memory(args)

    def load(self, args: argparse.Namespace, backend: Backend, seed: int) -> TaskData:
        return load_task(args.source, backend, size=parse_size(args.size), color=args.color or "rgb",
                         features=args.features or "pixels", classes=class_list(args.classes),
                         test_fraction=args.test_fraction, seed=seed, max_in_memory=args.max_in_memory)

    def test_data(self, model: Model, data: str | None, data_dir: str | None) -> EvalData:
        task = evaluation_data(str(data), model.preprocessing, model.class_names, model.backend)
        return EvalData(task.x_test, task.y_test, task.test_name)

    def predict_features(self, model: Model, path: Path) -> tuple[list[str], Any]:
        if model.preprocessing.get("type") == "hue_histogram":
            return [str(path)], _hue_transform(model.preprocessing, model.backend)[0]([path])
        return [str(path)], image_features(model.preprocessing, [path])


TASK = ImagesTask()
