"""Fruits-360 images: find the class folders, list the image files, decode them into one uint8 batch.

Two layouts are read: the Fruits-360 one (``Training/`` and optional ``Test/``, each with one folder per
class) and a plain folder of class folders, taken as the training split. Listing and decoding are separate
steps so that a feature cache can skip decoding images it has already seen.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xpnet.data.images import open_image
from xpnet.errors import DataError

DEFAULT_CLASSES = ("Apple Braeburn", "Lemon Meyer", "Mango", "Raspberry")
"""The four classes of the tutorial, used when they are all present and no classes are asked for."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

SPLIT_FOLDERS = {"train": "Training", "test": "Test"}


@dataclass
class ImageSet:
    """Image files of one split, with their class index into ``class_names``."""

    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def class_folders(split_dir: Path) -> list[str]:
    """The class folder names of a split folder, sorted (hidden folders left out)."""
    return sorted(
        entry.name for entry in split_dir.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )


def find_split_dirs(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The folder of each split: {"train": Training/, "test": Test/} (test only when present), or
    {"train": data_dir} for a plain folder of class folders."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    if (root / SPLIT_FOLDERS["train"]).is_dir():
        return {split: root / name for split, name in SPLIT_FOLDERS.items() if (root / name).is_dir()}
    if not class_folders(root):
        raise DataError(
            f"{root} has no class folders: expected Fruits-360's Training/ (and Test/) folders, "
            "or one folder of images per class"
        )
    return {"train": root}


def _image_files(class_dir: Path) -> list[Path]:
    """Image files of a class folder, sorted; others are skipped with a warning (hidden files silently)."""
    files = sorted(
        entry for entry in class_dir.iterdir() if entry.is_file() and not entry.name.startswith(".")
    )
    images = [path for path in files if path.suffix.lower() in IMAGE_SUFFIXES]
    others = [path.name for path in files if path.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        warnings.warn(f"skipping {len(others)} non-image file(s) in {class_dir}: {shown}", stacklevel=3)
    if not images:
        raise DataError(
            f"class folder {class_dir} has no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "remove the folder or leave it out of the classes"
        )
    return images


def load_fruits(data_dir: str | os.PathLike, classes: Sequence[str] | None = None) -> dict[str, ImageSet]:
    """List the images of each split ("train", and "test" when present) for ``classes``.

    ``classes`` None means the tutorial's ``DEFAULT_CLASSES`` when the training split has them all, else every
    class folder (sorted). Labels index into the class list, the same for both splits.
    """
    splits = find_split_dirs(data_dir)
    available = class_folders(splits["train"])
    if classes is None:
        class_names = list(DEFAULT_CLASSES) if set(DEFAULT_CLASSES) <= set(available) else available
    else:
        class_names = list(classes)
    if not class_names:
        raise DataError("no classes were asked for; name at least one class folder")
    repeated = sorted({name for name in class_names if class_names.count(name) > 1})
    if repeated:
        raise DataError(f"class {repeated[0]!r} is asked for more than once; name each class folder once",
                        hint="--classes lists each class once")
    result = {}
    for split, split_dir in splits.items():
        paths: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(class_names):
            class_dir = split_dir / name
            if not class_dir.is_dir():
                raise DataError(
                    f"class {name!r} has no folder in {split_dir}; available classes: "
                    f"{', '.join(class_folders(split_dir)) or '(none)'}"
                )
            files = _image_files(class_dir)
            paths += files
            labels += [label] * len(files)
        result[split] = ImageSet(paths, np.asarray(labels, dtype=np.int64), class_names)
    return result


IMAGE_MODES = {"rgb": ("RGB", 3), "grey": ("L", 1)}
"""Colour modes images are read in: Pillow's mode name and the channels per pixel."""


def read_image(path: str | os.PathLike, color: str = "rgb", size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file as uint8 (height, width, channels) in ``color`` ("rgb" or "grey"), resized (bilinear) to
    ``size`` (height, width) when given; DataError naming the file when it is missing or not a readable image."""
    mode, channels = IMAGE_MODES[color]
    converted = open_image(path, mode)
    if size is not None and (converted.height, converted.width) != tuple(size):
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(converted, dtype=np.uint8).reshape(converted.height, converted.width, channels)


def read_images(
    paths: Sequence[str | os.PathLike],
    color: str = "rgb",
    size: tuple[int, int] | None = None,
    like: tuple[str | os.PathLike, tuple[int, ...]] | None = None,
) -> np.ndarray:
    """Image files as one uint8 (n, height, width, channels) batch, every one readable (else a DataError naming
    it): resized to ``size`` when given, else all the size of ``like`` (a path and its image's shape), or of the
    first; an image of another size is a DataError naming both."""
    images: list[np.ndarray] = []
    for path in paths:
        image = read_image(path, color, size)
        if like is None:
            like = (path, image.shape)
        if image.shape != like[1]:
            (height, width), (first_height, first_width) = image.shape[:2], like[1][:2]
            raise DataError(f"{path} is {height}x{width} pixels but {like[0]} is {first_height}x{first_width}: "
                            "the images differ in size; give --size HxW to resize them all")
        images.append(image)
    if not images:
        raise DataError("no image files to read")
    return np.stack(images)


def decode_images(
    paths: Sequence[str | os.PathLike], size: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Decode image files into a uint8 (n, height, width, 3) RGB batch, and the indices of ``paths`` kept.

    Unreadable or corrupt files are skipped with a warning naming them. Images whose size differs from
    ``size`` (height, width), or from the first readable image when ``size`` is None, are resized (bilinear).
    """
    images: list[np.ndarray] = []
    kept: list[int] = []
    for index, path in enumerate(paths):
        try:
            rgb = read_image(path, "rgb", size)
        except DataError as exc:
            warnings.warn(f"skipping an unreadable image: {exc}", stacklevel=2)
            continue
        size = size or rgb.shape[:2]
        images.append(rgb)
        kept.append(index)
    if not images:
        raise DataError(
            f"none of the {len(paths)} image file(s) could be read (first: {paths[0]}); "
            "check that they are complete image files"
            if paths
            else "no image files to decode"
        )
    return np.stack(images), kept
