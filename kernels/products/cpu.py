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

from ..numba_cpu import add_partial_row, contiguous_output, serial_and_parallel, write_back

CHUNK_PRODUCT = 2**18
"""Multiply-adds per chunk: OpenBLAS runs every product this small on the calling thread (it threads only above
65536 x GEMM_MULTITHREAD_THRESHOLD, 4 unless built otherwise: 262144), in its small-matrix kernel where it has one;
chunks of about 1e6 ran as fast and chunks of 1.5e6 twice as slow, packed (2-core AMD EPYC VM, 2026-12-05)."""

PRODUCT_MIN_ROWS = 28
WEIGHT_GRADIENT_MIN_ROWS = 64
"""The fewest rows per chunk worth chunking: with fewer, the weight matrix is too wide and the product stays whole
(2-core AMD EPYC VM, 2026-12-05, one / two threads). Forward chunks won from 28 rows (6272 x 576 by 576 x 16: 1.21 /
0.60 ms against 1.59 / 0.78 ms), and chunks of 20 rows lost on two threads where the output was wide (a narrow Dense
layer's dL/dx, 1000 x 16 by 16 x 784: 0.22 against 0.18 ms). Weight-gradient chunks won at 56 rows and lost at 32
(25088 x 256 by 32: 8.1 against 6.2 ms on one thread), since each of them writes a partial result of the weights'
size."""


def chunk_rows(rows: int, k: int, f: int, fewest: int) -> int:
    """Rows per chunk of a product of ``rows`` rows with a K x F weight matrix: at least ``fewest``, and at least
    two chunks; 0 where the product is not worth chunking."""
    chunk = CHUNK_PRODUCT // max(k * f, 1)
    return chunk if chunk >= fewest and rows >= 2 * chunk else 0


def _product_chunks(starts, a, b, out):
    """out = a @ b, chunk by chunk of rows: chunk c from row starts[c] to the next start (C-contiguous operands)."""
    rows, chunks = a.shape[0], starts.shape[0]
    for c in prange(chunks):
        hi = starts[c + 1] if c + 1 < chunks else rows
        np.dot(a[starts[c]:hi], b, out[starts[c]:hi])


def _weight_gradient_chunks(starts, patches, dz, partial, out):
    """partial[c] = patches[rows of chunk c].T @ dz[the same rows], chunks as in ``_product_chunks``; then out =
    the partials added up in order."""
    rows, chunks = patches.shape[0], starts.shape[0]
    for c in prange(chunks):
        hi = starts[c + 1] if c + 1 < chunks else rows
        np.dot(patches[starts[c]:hi].T, dz[starts[c]:hi], partial[c])
    for r in prange(out.shape[0]):
        add_partial_row(partial, out, r)


# Parallel from these many chunks (the size of the first argument, the chunks' first rows; every chunk but the last
# holds about CHUNK_PRODUCT multiply-adds, so the count measures the work), 2-core AMD EPYC VM, 2026-12-05, nothing
# else running (load average 0.4-0.5). The product's: `python -m benchmarks.parallel_thresholds --threads 2 --only
# products.product_chunks products.weight_gradient_chunks` (23:30 and 23:31, 4 in both). The weight gradient's
# crossed at 389 and 123 chunks of the second convolution's shape in those runs, and at 39 timed directly, all noisy
# below 0.1 ms; but 14 chunks of the first convolution's (3640 rows of 9 by 8) took 0.074 ms in parallel against
# 0.120 ms serial, and the quick CNN's step gained from both weight gradients in parallel (`benchmarks.kernel_ab`).
PRODUCT_CHUNKS_PARALLEL_MIN = 4
WEIGHT_GRADIENT_CHUNKS_PARALLEL_MIN = 14

_product_kernel = serial_and_parallel(_product_chunks, PRODUCT_CHUNKS_PARALLEL_MIN)

_weight_gradient_kernel = serial_and_parallel(_weight_gradient_chunks, WEIGHT_GRADIENT_CHUNKS_PARALLEL_MIN)


def _starts(rows: int, chunk: int):
    """The first row of every chunk."""
    return np.arange(0, rows, chunk, dtype=np.int64)


def product(a, b, out) -> None:
    """out (rows, F) = a @ b, in row chunks over Numba's threads where a is tall and b small."""
    chunk = chunk_rows(a.shape[0], *b.shape, PRODUCT_MIN_ROWS)
    if not chunk:
        np.matmul(a, b, out=out)
        return
    result = contiguous_output(out)
    _product_kernel(_starts(a.shape[0], chunk), np.ascontiguousarray(a), np.ascontiguousarray(b), result)
    write_back(out, result)


def weight_gradient(patches, dz, out) -> None:
    """out (K, F) = patches.T @ dz, as the in-order sum of row chunks' products where the result is small and the
    rows many."""
    rows, k = patches.shape
    chunk = chunk_rows(rows, k, dz.shape[1], WEIGHT_GRADIENT_MIN_ROWS)
    if not chunk:
        np.matmul(patches.T, dz, out=out)
        return
    starts = _starts(rows, chunk)
    partial = np.empty((len(starts), k, dz.shape[1]), out.dtype)
    result = contiguous_output(out)
    _weight_gradient_kernel(starts, np.ascontiguousarray(patches), np.ascontiguousarray(dz), partial, result)
    write_back(out, result)
