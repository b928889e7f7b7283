"""Numba CUDA row gather, one thread per output element."""

from __future__ import annotations

import numpy as np
from numba import cuda, int64, void

from ..numba_cuda import array, cuda_kernel, require


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(int64, 1)))
def _gather_rows(src, out, idx):
    n, m = out.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        out[i, j] = src[idx[i], j]


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch); idx is int64, every entry in [0, len(src))."""
    require("gather_rows", "idx", idx, np.int64)
    _gather_rows.launch(out.size, (src, out), tail=idx)
