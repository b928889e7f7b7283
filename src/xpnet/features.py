"""Hue-histogram features of the Fruits-360 tutorial: histograms, bin selection and standardisation, a cache.

Each image becomes a 360-bin histogram of its pixels' hues (see ``xpnet.kernels.hue``). Only the bins that
vary across the training images carry information, so ``HueHistogramFeatures`` keeps the bins whose standard
deviation exceeds ``min_std`` (50 pixels, the tutorial's rule) and standardises them; it saves that choice
with the model so that prediction uses the same bins. ``cached_histograms`` stores each image's histogram
under the SHA-256 of its file, so repeated runs over the same images skip decoding them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.data import fruits
from xpnet.errors import DataError, ModelFileError
from xpnet.fileio import atomic_write
from xpnet.kernels import array_module, hue
from xpnet.scaling import RunningStats

if TYPE_CHECKING:
    from xpnet.backend import Backend

DEFAULT_MIN_STD = 50.0
"""Bins whose pixel count varies less than this (standard deviation over the training images) are dropped."""

STD_FLOOR = 1e-12
"""Smallest standard deviation divided by, so that a constant bin (kept with min_std < 0) gives 0, not inf."""

CACHE_VERSION = "xpnet-hue-histogram-v1"
"""Part of every cache key: change it when the histogram definition changes, and old entries are ignored."""

CACHE_SIZE = (100, 100)
"""(height, width) images are decoded at for the cache: a histogram's counts depend on the image size."""


def _to_host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") else np.asarray(x)


def hue_histograms(images: Any, backend: Backend, bins: int = hue.DEFAULT_BINS) -> Any:
    """Hue histograms (float64 (n, bins)) of uint8 RGB images, computed on ``backend``'s device."""
    return backend.kernels.hue_histograms(backend.asarray(images), bins)


class HueHistogramFeatures:
    """Selects the hue bins that vary over the training set and standardises them with training statistics."""

    def __init__(self, min_std: float = DEFAULT_MIN_STD) -> None:
        self.min_std = float(min_std)
        self.bins: int | None = None
        self.kept: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Number of kept bins: the width of ``transform``'s output."""
        return len(self._fitted()[0])

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.kept is None or self.mean is None or self.std is None:
            raise ValueError("HueHistogramFeatures is not fitted: call fit() or load it with from_dict()")
        return self.kept, self.mean, self.std

    def fit(self, hist: Any) -> HueHistogramFeatures:
        """Keep the bins of ``hist`` (n, bins) whose standard deviation over the rows exceeds ``min_std``."""
        if hist.ndim != 2 or hist.shape[0] == 0:
            raise DataError(
                f"expected hue histograms of shape (n_images, bins) with n_images > 0, got {hist.shape}"
            )
        return self.fit_stats(RunningStats().update(_to_host(hist)))

    def fit_stats(self, stats: RunningStats) -> HueHistogramFeatures:
        """``fit`` from per-bin statistics of the training histograms, gathered a chunk of images at a time."""
        std = stats.std
        kept = np.flatnonzero(std > self.min_std)
        if kept.size == 0:
            raise DataError(
                f"no hue bin varies with a standard deviation above min_std={self.min_std:g} over the "
                f"{stats.count} training image(s) (largest: {std.max():.3g}); train on more images or more "
                "classes, or lower min_std"
            )
        self.bins = int(std.shape[0])
        self.kept = kept
        self.mean = stats.mean[kept]
        self.std = np.maximum(std[kept], STD_FLOOR)
        return self

    def transform(self, hist: Any) -> Any:
        """Standardised kept bins, (n, n_features), on the array module of ``hist``."""
        kept, mean, std = self._fitted()
        if hist.ndim != 2 or hist.shape[1] != self.bins:
            raise DataError(
                f"expected hue histograms with {self.bins} bins per image, got shape {hist.shape}"
            )
        xp = array_module(hist)
        return (hist[:, xp.asarray(kept)] - xp.asarray(mean)) / xp.asarray(std)

    def fit_transform(self, hist: Any) -> Any:
        """``fit(hist)`` then ``transform(hist)``."""
        return self.fit(hist).transform(hist)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, saved with a model so that prediction selects the same bins."""
        kept, mean, std = self._fitted()
        return {
            "bins": self.bins,
            "min_std": self.min_std,
            "kept": [int(k) for k in kept],
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> HueHistogramFeatures:
        """Rebuild fitted features from ``to_dict()``'s output; a malformed state is a ModelFileError."""
        try:
            features = cls(float(state["min_std"]))
            features.bins = int(state["bins"])
            features.kept = np.asarray(state["kept"], dtype=np.int64)
            features.mean = np.asarray(state["mean"], dtype=np.float64)
            features.std = np.maximum(np.asarray(state["std"], dtype=np.float64), STD_FLOOR)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the saved hue-histogram feature settings are malformed: {exc!r}") from exc
        kept = features.kept
        if not (
            kept.ndim == 1
            and kept.size > 0
            and features.mean.shape == kept.shape
            and features.std.shape == kept.shape
            and kept.min() >= 0
            and kept.max() < features.bins
        ):
            raise ModelFileError(
                "the saved hue-histogram feature settings are inconsistent: kept, mean and std must be "
                f"equally long non-empty lists, with bins in 0..{features.bins - 1}"
            )
        return features


def _cache_key(data: bytes, bins: int, size: tuple[int, int]) -> str:
    header = f"{CACHE_VERSION}|bins={bins}|size={size[0]}x{size[1]}|".encode()
    return hashlib.sha256(header + data).hexdigest()


def _load_entry(entry: Path, bins: int) -> np.ndarray | None:
    """A cached histogram, or None when absent or unusable (a corrupt entry is recomputed, with a warning)."""
    if not entry.exists():
        return None
    try:
        with np.load(entry, allow_pickle=False) as stored:
            row = stored["hist"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(f"feature cache entry {entry} is unreadable ({exc}); recomputing it", stacklevel=3)
        return None
    if row.shape != (bins,) or row.dtype != np.float64:
        warnings.warn(
            f"feature cache entry {entry} holds {row.dtype} {row.shape}; recomputing it", stacklevel=3
        )
        return None
    return row


def cached_histograms(
    paths: Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike,
    backend: Backend,
    *,
    bins: int = hue.DEFAULT_BINS,
    size: tuple[int, int] = CACHE_SIZE,
) -> tuple[np.ndarray, list[int]]:
    """Hue histograms of image files (float64 (n, bins), on the host) and the indices of ``paths`` kept.

    Each histogram is stored in ``cache_dir`` as one .npz named by the SHA-256 of the file's bytes (with
    ``bins``, ``size`` and ``CACHE_VERSION``), so only images not seen before are decoded (at ``size``, as
    (height, width)) and computed on ``backend``. Unreadable images are skipped with a warning.
    """
    cache = Path(cache_dir)
    rows: dict[int, np.ndarray] = {}
    missing: list[tuple[int, Path]] = []
    for index, path in enumerate(paths):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            warnings.warn(f"skipping unreadable image {path}: {exc}", stacklevel=2)
            continue
        entry = cache / f"{_cache_key(data, bins, size)}.npz"
        row = _load_entry(entry, bins)
        if row is None:
            missing.append((index, entry))
        else:
            rows[index] = row
    if missing:
        try:
            images, decoded = fruits.decode_images([paths[index] for index, _ in missing], size=size)
        except DataError:
            if not rows:
                raise
        else:
            hist = backend.to_host(hue_histograms(images, backend, bins))
            writable = True
            for row, position in zip(hist, decoded, strict=True):
                index, entry = missing[position]
                rows[index] = row
                if writable:
                    try:
                        with atomic_write(entry) as handle:
                            np.savez(handle, hist=row)
                    except OSError as exc:
                        warnings.warn(
                            f"cannot write the feature cache in {cache} ({exc}); not caching", stacklevel=2
                        )
                        writable = False
    if not rows:
        raise DataError(
            f"none of the {len(paths)} image file(s) could be read" if paths else "no image files given"
        )
    kept = sorted(rows)
    return np.stack([rows[index] for index in kept]), kept
