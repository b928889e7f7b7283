"""Numba CPU batch normalisation: float64 column sums by fixed blocks of rows, then one elementwise pass."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..numba_cpu import BLOCK_ROWS, add_partials, row_blocks, serial_and_parallel


def _column_sums_f64(x, other, partial, out):
    """out[j] = sum_i x[i, j] (other is None) or sum_i x[i, j] * other[i, j], in float64, over ``len(partial)``
    blocks of ``BLOCK_ROWS`` rows (each summed into its own row of ``partial``, then added up in order)."""
    m, c = x.shape
    chunks = partial.shape[0]
    for k in prange(chunks):
        acc = partial[k]
        for j in range(c):
            acc[j] = 0.0
        for i in range(k * BLOCK_ROWS, min((k + 1) * BLOCK_ROWS, m)):
            if other is None:
                for j in range(c):
                    acc[j] += x[i, j]
            else:
                for j in range(c):
                    acc[j] += np.float64(x[i, j]) * other[i, j]
    add_partials(partial, out)


def _squared_deviations_f64(x, mean, partial, out):
    """out[j] = sum_i (x[i, j] - mean[j])**2 in float64, chunked like ``_column_sums_f64``."""
    m, c = x.shape
    chunks = partial.shape[0]
    for k in prange(chunks):
        acc = partial[k]
        for j in range(c):
            acc[j] = 0.0
        for i in range(k * BLOCK_ROWS, min((k + 1) * BLOCK_ROWS, m)):
            for j in range(c):
                e = x[i, j] - mean[j]
                acc[j] += e * e
    add_partials(partial, out)


def _normalise(y, xhat, x, gamma, beta, mean, inv):
    """xhat = (x - mean) * inv; y = gamma * xhat + beta, by rows (mean, inv in x's dtype)."""
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            h = (x[i, j] - mean[j]) * inv[j]
            xhat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


def _batch_norm_eval(y, x, gamma, beta, running_mean, running_var, eps):
    c = x.shape[1]
    scale = np.empty(c, x.dtype)
    for j in range(c):
        scale[j] = gamma[j] / math.sqrt(running_var[j] + eps)
    for i in prange(x.shape[0]):
        for j in range(c):
            y[i, j] = (x[i, j] - running_mean[j]) * scale[j] + beta[j]


def _batch_norm_dx(dx, dy, xhat, scale, m, dbeta, dgamma):
    """dx = scale * (m * dy - dbeta - xhat * dgamma) by rows; dx may be dy."""
    for i in prange(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = scale[j] * (m * dy[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
COLUMN_SUMS_PARALLEL_MIN = 31_624
SQUARED_DEVIATIONS_PARALLEL_MIN = 31_624
NORMALISE_PARALLEL_MIN = 10_000
BATCH_NORM_EVAL_PARALLEL_MIN = 31_624
BATCH_NORM_DX_PARALLEL_MIN = 10_000

column_sums = serial_and_parallel(_column_sums_f64, COLUMN_SUMS_PARALLEL_MIN)
"""Float64 column sums by fixed blocks of rows (``_column_sums_f64``): batch norm's statistics and the activations
family's bias gradient."""


_squared_deviations_kernel = serial_and_parallel(_squared_deviations_f64, SQUARED_DEVIATIONS_PARALLEL_MIN)


_normalise_kernel = serial_and_parallel(_normalise, NORMALISE_PARALLEL_MIN)


_batch_norm_eval_kernel = serial_and_parallel(_batch_norm_eval, BATCH_NORM_EVAL_PARALLEL_MIN)


_batch_norm_dx_kernel = serial_and_parallel(_batch_norm_dx, BATCH_NORM_DX_PARALLEL_MIN)


def batch_norm_train(x, gamma, beta, eps: float, momentum: float, running_mean, running_var, y, xhat,
                     inv_std) -> None:
    """Batch normalisation of x (M, C) by its column mean and biased variance (two passes, float64 sums);
    inv_std = 1 / sqrt(var + eps), xhat, y = gamma * xhat + beta, running stats updated the Keras way."""
    m, c = x.shape
    partial = np.empty((row_blocks(m), c))
    mean = np.empty(c)
    var = np.empty(c)
    column_sums(x, None, partial, mean)
    mean /= m
    _squared_deviations_kernel(x, mean, partial, var)
    var /= m
    inv = 1 / np.sqrt(var + eps)
    inv_std[...] = inv
    t = x.dtype.type
    mean_t = mean.astype(x.dtype)
    _normalise_kernel(y, xhat, x, gamma, beta, mean_t, inv.astype(x.dtype))
    running_mean *= t(momentum)
    running_mean += t(1 - momentum) * mean_t
    running_var *= t(momentum)
    running_var += t(1 - momentum) * var.astype(x.dtype)


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps: float, y) -> None:
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, for x (M, C)."""
    _batch_norm_eval_kernel(y, x, gamma, beta, running_mean, running_var, x.dtype.type(eps))


def batch_norm_backward(dy, xhat, gamma, inv_std, dx, dgamma, dbeta) -> None:
    """dbeta = column sums of dy, dgamma = column sums of dy * xhat (float64 sums); dx = gamma * inv_std / M *
    (M * dy - dbeta - xhat * dgamma); dx may be dy."""
    m, c = dy.shape
    partial = np.empty((row_blocks(m), c))
    sums = np.empty((2, c))
    column_sums(dy, None, partial, sums[0])
    column_sums(dy, xhat, partial, sums[1])
    t = dy.dtype.type
    db = sums[0].astype(dy.dtype)
    dg = sums[1].astype(dy.dtype)
    scale = gamma * inv_std / t(m)
    _batch_norm_dx_kernel(dx, dy, xhat, scale.astype(dy.dtype), t(m), db, dg)
    dbeta[...] = db
    dgamma[...] = dg
