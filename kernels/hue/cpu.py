"""Numba CPU hue histograms, parallel over images."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..numba_cpu import serial_and_parallel
from ..scalar import pixel_hue_bin
from . import DEFAULT_BINS

_pixel_hue_bin = njit(cache=True, inline="always")(pixel_hue_bin)


def _hue_histograms(images, out):
    """out[i, bin] += 1 for every pixel of image i (out starts at zero). images comes first (size)."""
    n, h, w, _ = images.shape
    bins = out.shape[1]
    for i in prange(n):
        for y in range(h):
            for x in range(w):
                k = _pixel_hue_bin(images[i, y, x, 0], images[i, y, x, 1], images[i, y, x, 2], bins)
                out[i, k] += 1.0


# Parallel from this size of the images: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
HUE_HISTOGRAMS_PARALLEL_MIN = 9_408

_hue_histograms_kernel = serial_and_parallel(_hue_histograms, HUE_HISTOGRAMS_PARALLEL_MIN)


def hue_histograms(images: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Numba CPU version of ``reference.hue_histograms`` for NumPy images: float64 (n, bins)."""
    out = np.zeros((images.shape[0], bins), dtype=np.float64)
    _hue_histograms_kernel(np.ascontiguousarray(images), out)
    return out
