"""Numba CUDA hue histograms: one block per image, counting into shared memory."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np

from .. import array_module
from ..scalar import pixel_hue_bin
from . import DEFAULT_BINS


@functools.cache
def _cuda_kernel(bins: int):
    """The CUDA kernel for ``bins`` bins (a compile-time constant: it sizes the shared-memory histogram).

    ``numba.cuda`` is bound as a global of this module, not a local: Numba's CUDA simulator swaps in its fake
    ``cuda`` module only where a kernel's globals name it.
    """
    global cuda
    from numba import cuda, int32

    device_hue_bin = cuda.jit(device=True)(pixel_hue_bin)

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
            k = device_hue_bin(images[i, y, x, 0], images[i, y, x, 1], images[i, y, x, 2], bins)
            cuda.atomic.add(counts, k, 1)
        cuda.syncthreads()
        for k in range(tid, bins, stride):
            out[i, k] = counts[k]

    return kernel


def hue_histograms(images: Any, bins: int = DEFAULT_BINS) -> Any:
    """Numba CUDA version of ``reference.hue_histograms``: one block per image.

    CuPy images stay on the device and the kernel runs on CuPy's current stream, so it is ordered with the
    CuPy work around it. NumPy images (Numba's CUDA simulator in tests) are launched plainly.
    """
    from numba import cuda
    from numba.core.errors import NumbaPerformanceWarning

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
            from ..numba_cuda import device_array

            stream = cuda.external_stream(xp.cuda.get_current_stream().ptr)
            kernel[n, threads, stream](device_array(images), device_array(out))
    return out
