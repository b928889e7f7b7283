"""Numba CPU output losses: gradient, loss and correct count in one pass over the rows.

The loss and correct count are summed by fixed blocks of ``BLOCK_ROWS`` rows (parallel over the blocks for large
outputs), then the blocks added up in order: the sums never depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..numba_cpu import BLOCK_ROWS, jit, serial_and_parallel
from ..scalar import binary_cross_entropy, cross_entropy_row, row_correct, smoothed_cross_entropy_row

_row_correct = jit(inline="always")(row_correct)
_binary_cross_entropy = jit(inline="always")(binary_cross_entropy)
_cross_entropy_row = jit(inline="always")(cross_entropy_row)


def _softmax_cross_entropy(z, a, y, dz, stats):
    n, m = z.shape
    inv_n = z.dtype.type(1.0 / n)
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    partial = np.zeros((max(blocks, 1), 2))
    for k in prange(blocks):
        for i in range(k * BLOCK_ROWS, min((k + 1) * BLOCK_ROWS, n)):
            for j in range(m):
                dz[i, j] = (a[i, j] - y[i, j]) * inv_n
            partial[k, 0] += _cross_entropy_row(z, a, y, i)
            partial[k, 1] += _row_correct(a, y, i)
    loss = 0.0
    correct = 0.0
    for k in range(blocks):
        loss += partial[k, 0]
        correct += partial[k, 1]
    stats[0] += loss
    stats[1] += correct


def _sigmoid_binary_cross_entropy(z, a, y, dz, stats):
    n, m = z.shape
    scale = z.dtype.type(1.0 / (n * m))
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    partial = np.zeros((max(blocks, 1), 2))
    for k in prange(blocks):
        for i in range(k * BLOCK_ROWS, min((k + 1) * BLOCK_ROWS, n)):
            for j in range(m):
                dz[i, j] = (a[i, j] - y[i, j]) * scale
                partial[k, 0] += _binary_cross_entropy(z[i, j], a[i, j], y[i, j], one, zero)
            partial[k, 1] += _row_correct(a, y, i)
    loss = 0.0
    correct = 0.0
    for k in range(blocks):
        loss += partial[k, 0]
        correct += partial[k, 1]
    stats[0] += loss / m
    stats[1] += correct


def _squared_error(a, y, da, stats, grad_scale, loss_scale):
    n, m = a.shape
    scale = a.dtype.type(grad_scale)
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    partial = np.zeros((max(blocks, 1), 2))
    for k in prange(blocks):
        for i in range(k * BLOCK_ROWS, min((k + 1) * BLOCK_ROWS, n)):
            for j in range(m):
                diff = a[i, j] - y[i, j]
                da[i, j] = scale * diff
                partial[k, 0] += diff * diff
            partial[k, 1] += _row_correct(a, y, i)
    loss = 0.0
    correct = 0.0
    for k in range(blocks):
        loss += partial[k, 0]
        correct += partial[k, 1]
    stats[0] += loss_scale * loss
    stats[1] += correct


# Parallel from these sizes of the first argument (z or a): measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
SOFTMAX_CROSS_ENTROPY_PARALLEL_MIN = 10_000
SIGMOID_BINARY_CROSS_ENTROPY_PARALLEL_MIN = 31_620
SQUARED_ERROR_PARALLEL_MIN = 3_160

_softmax_cross_entropy_kernel = serial_and_parallel(_softmax_cross_entropy, SOFTMAX_CROSS_ENTROPY_PARALLEL_MIN)
_sigmoid_binary_cross_entropy_kernel = serial_and_parallel(_sigmoid_binary_cross_entropy,
                                                           SIGMOID_BINARY_CROSS_ENTROPY_PARALLEL_MIN)
_squared_error_kernel = serial_and_parallel(_squared_error, SQUARED_ERROR_PARALLEL_MIN)


def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    _softmax_cross_entropy_kernel(z, a, y, dz, stats)


def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    _sigmoid_binary_cross_entropy_kernel(z, a, y, dz, stats)


def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    _squared_error_kernel(a, y, da, stats, grad_scale, loss_scale)


_smoothed_cross_entropy_row = jit(inline="always")(smoothed_cross_entropy_row)


@jit
def softmax_cross_entropy_smoothed(z, a, y, dz, stats, smoothing: float) -> None:
    """Softmax + cross-entropy against the target t = (1 - smoothing) * y + smoothing / m: dz = (a - t) / n."""
    n, m = z.shape
    t = z.dtype.type
    inv_n = t(1.0 / n)
    keep = t(1.0 - smoothing)
    uniform = t(smoothing / m)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            dz[i, j] = (a[i, j] - (keep * y[i, j] + uniform)) * inv_n
        loss += _smoothed_cross_entropy_row(z, a, y, i, keep, uniform)
        correct += _row_correct(a, y, i)
    stats[0] += loss
    stats[1] += correct
