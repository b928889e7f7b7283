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

- ``hue_histograms_reference``: plain ``xp`` code (NumPy or CuPy), the definition;
- ``hue_histograms_cpu``: a Numba kernel, parallel over images;
- ``hue_histograms_cuda``: a Numba CUDA kernel, one block per image counting into shared memory.
  ``numba.cuda`` is imported only when it runs, so importing this module never initialises CUDA.

The kernel sets (``sets.py``) offer the one for their device as ``hue_histograms``.
"""

from __future__ import annotations

import functools
import math
import warnings
from types import ModuleType
from typing import Any

import numpy as np
from numba import njit, prange

from .cpu import _serial_and_parallel

DEFAULT_BINS = 360


def array_module(x: Any) -> ModuleType:
    """CuPy for a CuPy array, else NumPy (without importing CuPy for host data)."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def _check(images: Any, bins: int) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB images shaped (n, h, w, 3), got {images.dtype} {images.shape}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")


def hue_reference(images: Any) -> Any:
    """Hue in [0, 1) of every pixel, shape (n, h, w), float64: ``skimage.color.rgb2hsv(images)[..., 0]``."""
    xp = array_module(images)
    arr = images.astype(xp.float64) * (1.0 / 255.0)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    v = arr.max(axis=-1)
    delta = v - arr.min(axis=-1)
    gray = delta == 0.0
    safe = xp.where(gray, 1.0, delta)  # grays get hue 0 below; this only avoids 0/0 warnings
    # Later rules win on ties, as in rgb2hsv: blue over green over red.
    hue = xp.where(b == v, 4.0 + (r - g) / safe, xp.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    hue = (hue / 6.0) % 1.0
    return xp.where(gray, 0.0, hue)


def hue_histograms_reference(images: Any, bins: int = DEFAULT_BINS) -> Any:
    """Pixel counts per hue bin for each image: float64 (n, bins), on the images' array module."""
    _check(images, bins)
    xp = array_module(images)
    n = images.shape[0]
    hue = hue_reference(images)
    step = 1.0 / bins
    index = xp.minimum((hue * bins).astype(xp.int64), bins - 1)  # first guess, off by one at most
    index -= (hue < index * step).astype(xp.int64)
    index += ((hue >= (index + 1) * step) & (index != bins - 1)).astype(xp.int64)
    index += (xp.arange(n, dtype=xp.int64) * bins)[:, None, None]
    return xp.bincount(index.ravel(), minlength=n * bins).reshape(n, bins).astype(xp.float64)


def _pixel_hue_bin(r8, g8, b8, bins):
    """Hue bin of one uint8 pixel; compiled for the CPU and for CUDA from this one source."""
    scale = 1.0 / 255.0
    r = r8 * scale
    g = g8 * scale
    b = b8 * scale
    v = max(r, g, b)
    delta = v - min(r, g, b)
    if delta == 0.0:
        return 0
    if b == v:
        hue = 4.0 + (r - g) / delta
    elif g == v:
        hue = 2.0 + (b - r) / delta
    else:
        hue = (g - b) / delta
    hue = (hue / 6.0) % 1.0
    step = 1.0 / bins
    k = min(int(hue * bins), bins - 1)
    if hue < k * step:
        k -= 1
    elif k != bins - 1 and hue >= (k + 1) * step:
        k += 1
    return k


_pixel_hue_bin_cpu = njit(cache=True, inline="always")(_pixel_hue_bin)


def _hue_histograms(images, out):
    """out[i, bin] += 1 for every pixel of image i (out starts at zero). images comes first (size)."""
    n, h, w, _ = images.shape
    bins = out.shape[1]
    for i in prange(n):
        for y in range(h):
            for x in range(w):
                k = _pixel_hue_bin_cpu(images[i, y, x, 0], images[i, y, x, 1], images[i, y, x, 2], bins)
                out[i, k] += 1.0


_hue_histograms_cpu = _serial_and_parallel(_hue_histograms)


def hue_histograms_cpu(images: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Numba CPU version of ``hue_histograms_reference`` for NumPy images: float64 (n, bins)."""
    _check(images, bins)
    out = np.zeros((images.shape[0], bins), dtype=np.float64)
    _hue_histograms_cpu(np.ascontiguousarray(images), out)
    return out


@functools.cache
def _cuda_kernel(bins: int):
    """The CUDA kernel for ``bins`` bins (a compile-time constant: it sizes the shared-memory histogram).

    ``numba.cuda`` is bound as a global of this module, not a local: Numba's CUDA simulator swaps in its fake
    ``cuda`` module only where a kernel's globals name it.
    """
    global cuda
    from numba import cuda, int32

    pixel_hue_bin = cuda.jit(device=True)(_pixel_hue_bin)

    @cuda.jit
    def kernel(images, out):
        i = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        stride = cuda.blockDim.x
        counts = cuda.shared.array(bins, dtype=int32)
        for k in range(tid, bins, stride):
            counts[k] = 0
        cuda.syncthreads()
        w = images.shape[2]
        for p in range(tid, images.shape[1] * w, stride):
            y = p // w
            x = p - y * w
            k = pixel_hue_bin(images[i, y, x, 0], images[i, y, x, 1], images[i, y, x, 2], bins)
            cuda.atomic.add(counts, k, 1)
        cuda.syncthreads()
        for k in range(tid, bins, stride):
            out[i, k] = counts[k]

    return kernel


def hue_histograms_cuda(images: Any, bins: int = DEFAULT_BINS) -> Any:
    """Numba CUDA version of ``hue_histograms_reference``: one block per image.

    CuPy images stay on the device and the kernel runs on CuPy's current stream, so it is ordered with the
    CuPy work around it. NumPy images (Numba's CUDA simulator in tests) are launched plainly.
    """
    from numba import cuda
    from numba.core.errors import NumbaPerformanceWarning

    _check(images, bins)
    xp = array_module(images)
    images = xp.ascontiguousarray(images)
    n, h, w, _ = images.shape
    out = xp.zeros((n, bins), dtype=xp.float64)
    if n == 0:
        return out
    threads = min(256, 32 * max(1, math.ceil(h * w / 32)))
    kernel = _cuda_kernel(bins)
    with warnings.catch_warnings():
        # One block per image: a batch of a few images is a small grid by nature, not a mistake to warn about.
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        if xp is np:
            kernel[n, threads](images, out)
        else:
            kernel[n, threads, cuda.external_stream(xp.cuda.get_current_stream().ptr)](images, out)
    return out

