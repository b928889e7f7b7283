"""The weight gradient of a layer with few weights, in row chunks that OpenBLAS's small-matrix kernel takes.

A first convolution's ``patches.T @ dz`` (9 x 50176 by 50176 x 8) is a long sum with a tiny result. OpenBLAS packs
it block by block and splits only the result's rows and columns among its threads, so it ran at 22 GFLOP/s and no
faster on two threads than on one. Cut into chunks of rows whose product stays under OpenBLAS's small-matrix limit
(its AVX-512 kernels take products of up to about 1e6 multiply-adds without packing: chunks of 0.98e6 ran twice as
fast as chunks of 1.2e6), then summed in order, the same product took 0.13 instead of 0.32 ms. The chunks depend
only on the shapes, so the result does not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

NARROW_MAX = 1024
"""Chunk only results of fewer than this many weights (K * F). Measured on the 2-core AMD EPYC VM (2026-12-05,
`python -m benchmarks --sections kernels`, and a sweep of shapes): chunks won at 1 and 2 threads up to K * F = 800
(9 x 8: 0.13 vs 0.32 ms; 25 x 32: 0.84 vs 1.14-1.31 ms), tied or lost on 2 threads from 1152 (72 x 16, 9 x 128),
and lost at 2304 (72 x 32, the second convolution: 0.57 vs 0.42 ms on 2 threads)."""

CHUNK_PRODUCT = 983_040
"""Rows x K x F per chunk (2**20 - 2**16), under OpenBLAS's small-matrix limit; larger chunks fall back to packing
and ran 2x slower."""


def chunk_rows(k: int, f: int) -> int:
    """Rows per chunk for a K x F result: a multiple of 64 keeping each chunk's product under ``CHUNK_PRODUCT``."""
    return max(64, CHUNK_PRODUCT // (k * f) // 64 * 64)


def weight_gradient(patches, dz, out) -> None:
    """out (K, F) = patches.T @ dz, summed chunk by chunk in order where the result is narrow and the rows many."""
    rows, k = patches.shape
    f = dz.shape[1]
    chunk = chunk_rows(k, f)
    if k * f >= NARROW_MAX or rows < 2 * chunk:
        np.matmul(patches.T, dz, out=out)
        return
    starts = range(0, rows, chunk)
    partial = np.empty((len(starts), k, f), out.dtype)
    for part, start in zip(partial, starts, strict=True):
        np.matmul(patches[start:start + chunk].T, dz[start:start + chunk], out=part)
    np.sum(partial, axis=0, out=out)
