"""Hue histograms of a batch of RGB images: the features of the Fruits-360 tutorial.

Hue is computed exactly as ``skimage.color.rgb2hsv`` does (uint8 scaled by ``1/255`` in float64, hue from the
largest channel and the spread ``delta``, ``(hue / 6) % 1``, and 0 for grays), then counted in ``bins`` equal
bins with fixed edges ``edge[k] = k * (1 / bins)`` over [0, 1]: bin k holds ``edge[k] <= hue < edge[k + 1]``,
the last bin also holds 1.0. These are ``numpy.linspace(0, 1, bins + 1)`` bit for bit, so the counts equal
``numpy.histogram(hue, bins, range=(0, 1))``. Fixed edges matter: without ``range`` NumPy spreads the bins
over each image's own min..max, so bin k would mean a different hue in every image. The edge tests matter
too: hues of uint8 pixels are ratios of small integers and often fall exactly on an edge, where
``floor(hue * bins)`` alone can round to the bin below.

Three implementations give the same counts, pixel for pixel (same float operations in the same order):

- ``reference.hue_histograms``: plain ``xp`` code (NumPy or CuPy), the definition;
- ``cpu.hue_histograms``: a Numba kernel, parallel over images;
- ``cuda.hue_histograms``: a Numba CUDA kernel, one block per image counting into shared memory.

Each pixel's bin is ``scalar.pixel_hue_bin``, one source compiled for both devices. The kernel sets offer the one
for their device as ``hue_histograms``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_BINS = 360


def check_hue_histograms(images: Any, bins: int = DEFAULT_BINS) -> None:
    """Refuse anything but uint8 RGB images (n, h, w, 3) and fewer than one bin."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB images shaped (n, h, w, 3), got {images.dtype} {images.shape}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
