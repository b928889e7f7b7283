"""Tall, narrow matrix products in row chunks small enough for BLAS to take whole, spread over Numba's threads.

A convolution multiplies tens of thousands of patch rows by a small weight matrix. OpenBLAS packs such a product
block by block and splits only the result's rows and columns among its threads, never the long inner dimension of
a weight gradient: the quick CNN's first ``patches.T @ dz`` (9 x 50176 by 50176 x 8) ran at 0.32 ms on one thread
and on two, the second's (72 x 12544 by 12544 x 32) at 0.69 / 0.43 ms. Cut into chunks of rows of at most
``CHUNK_PRODUCT`` multiply-adds, each chunk is one BLAS call that runs on the calling thread without packing, and
Numba's threads take the chunks (BLAS through Numba's ``np.dot``, which calls SciPy's BLAS). On the 2-core AMD EPYC VM
(2026-12-05, one / two threads): the first weight gradient 0.12 / 0.07 ms, the second 0.55 / 0.29 ms, the second
convolution's forward product (12544 x 72 by 72 x 32) 0.52 / 0.26 ms instead of 0.63 / 0.33 ms. Products with wide
weight matrices (Dense layers) or few rows stay one ``np.matmul``. The chunks depend only on the shapes, and the
weight gradient adds its chunks' products in order, so results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..numba_cpu import contiguous_output, serial_and_parallel, write_back

CHUNK_PRODUCT = 2**18
"""Multiply-adds per chunk: OpenBLAS runs every product this small on the calling thread (it threads only above
65536 x GEMM_MULTITHREAD_THRESHOLD = 262144), in its small-matrix kernel where it has one (AVX-512 machines);
chunks of about 1e6 ran as fast and chunks of 1.5e6 twice as slow, packed (2-core AMD EPYC VM, 2026-12-05)."""

PRODUCT_MIN_ROWS = 16
WEIGHT_GRADIENT_MIN_ROWS = 64
"""The fewest rows per chunk worth chunking: with fewer, the weight matrix is too wide and the product stays whole.
Forward chunks won from 14 rows (6272 x 288 by 288 x 64: 2.10 / 1.05 ms against 2.35 / 1.19 ms on one / two
threads); weight-gradient chunks won at 56 rows and lost at 32 (25088 x 256 by 32: 8.1 against 6.2 ms on one
thread), since each of them writes a partial result of the weights' size (2-core AMD EPYC VM, 2026-12-05)."""


def chunk_rows(rows: int, k: int, f: int, fewest: int) -> int:
    """Rows per chunk of a product of ``rows`` rows with a K x F weight matrix: at least ``fewest``, and at least
    two chunks; 0 where the product is not worth chunking."""
    chunk = CHUNK_PRODUCT // max(k * f, 1)
    return chunk if chunk >= fewest and rows >= 2 * chunk else 0


def _product_chunks(a, b, out, chunk):
    """out = a @ b, chunk by chunk of rows (C-contiguous operands)."""
    rows = a.shape[0]
    for c in prange((rows + chunk - 1) // chunk):
        lo = c * chunk
        hi = min(lo + chunk, rows)
        np.dot(a[lo:hi], b, out[lo:hi])


def _weight_gradient_chunks(patches, dz, partial, chunk):
    """partial[c] = patches[rows of chunk c].T @ dz[the same rows] (C-contiguous operands)."""
    rows = patches.shape[0]
    for c in prange(partial.shape[0]):
        lo = c * chunk
        hi = min(lo + chunk, rows)
        np.dot(patches[lo:hi].T, dz[lo:hi], partial[c])


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2 --only products.product_chunks products.weight_gradient_chunks` on Numba's TBB pool, 2-core AMD EPYC VM,
# 2026-12-05 22:29, nothing else running (load average 0.4), on a second convolution's shapes (72 x 32 weights).
PRODUCT_CHUNKS_PARALLEL_MIN = 31_608
WEIGHT_GRADIENT_CHUNKS_PARALLEL_MIN = 31_608

_product_kernel = serial_and_parallel(_product_chunks, PRODUCT_CHUNKS_PARALLEL_MIN)

_weight_gradient_kernel = serial_and_parallel(_weight_gradient_chunks, WEIGHT_GRADIENT_CHUNKS_PARALLEL_MIN)


def product(a, b, out) -> None:
    """out (rows, F) = a @ b, in row chunks over Numba's threads where a is tall and b small."""
    chunk = chunk_rows(a.shape[0], *b.shape, PRODUCT_MIN_ROWS)
    if not chunk:
        np.matmul(a, b, out=out)
        return
    result = contiguous_output(out)
    _product_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), result, chunk)
    write_back(out, result)


def weight_gradient(patches, dz, out) -> None:
    """out (K, F) = patches.T @ dz, as the in-order sum of row chunks' products where the result is small and the
    rows many."""
    rows, k = patches.shape
    chunk = chunk_rows(rows, k, dz.shape[1], WEIGHT_GRADIENT_MIN_ROWS)
    if not chunk:
        np.matmul(patches.T, dz, out=out)
        return
    partial = np.empty(((rows + chunk - 1) // chunk, k, dz.shape[1]), out.dtype)
    _weight_gradient_kernel(np.ascontiguousarray(patches), np.ascontiguousarray(dz), partial, chunk)
    np.sum(partial, axis=0, out=out)
