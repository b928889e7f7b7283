"""Numba CUDA batch normalisation: column sums in two stages (strided float64 partials, then one block per
column in shared memory), then elementwise passes."""

from __future__ import annotations

import math

import numpy as np
from numba import config, cuda, float64, void

from .. import array_module
from ..numba_cuda import MAX_BLOCKS, THREADS_PER_BLOCK, array, cuda_kernel, row_reduce

REDUCTION_THREADS = THREADS_PER_BLOCK * MAX_BLOCKS if config.ENABLE_CUDASIM else 1 << 18
"""Threads the first stage of a column reduction aims for (each sums a strided share of one column's rows into
a float64 partial), enough to fill a device; ``REDUCTION_MIN_ROWS`` keeps each share from getting too small to
be worth its partial. The second stage sums each column's partials with one block per column."""


REDUCTION_MIN_ROWS = 32


@cuda_kernel(lambda t: void(array(t, 2), array(float64, 2)))
def _column_partials(x, partial):
    """Stage one of the column sums: thread (r, j) sums rows r, r + R, r + 2R, ... of column j into partial[r, j]
    (R = len(partial)) in float64; neighbouring threads read neighbouring columns of a row."""
    n, m = x.shape
    chunks = partial.shape[0]
    for k in range(cuda.grid(1), chunks * m, cuda.gridsize(1)):
        r = k // m
        j = k - r * m
        s = 0.0
        for i in range(r, n, chunks):
            s += x[i, j]
        partial[r, j] = s


@cuda_kernel(lambda t: void(array(t, 2), array(float64, 1), array(float64, 2)))
def _deviation_partials(x, mean, partial):
    """Stage one of sum (x - mean)^2 per column, like ``_column_partials`` (mean is float64)."""
    n, m = x.shape
    chunks = partial.shape[0]
    for k in range(cuda.grid(1), chunks * m, cuda.gridsize(1)):
        r = k // m
        j = k - r * m
        s = 0.0
        for i in range(r, n, chunks):
            e = x[i, j] - mean[j]
            s += e * e
        partial[r, j] = s


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(float64, 2), array(float64, 2)))
def _product_partials(dy, xhat, partial_dy, partial_product):
    """Stage one of the sums of dy and of dy * xhat per column, like ``_column_partials``."""
    n, m = dy.shape
    chunks = partial_dy.shape[0]
    for k in range(cuda.grid(1), chunks * m, cuda.gridsize(1)):
        r = k // m
        j = k - r * m
        s = 0.0
        sp = 0.0
        for i in range(r, n, chunks):
            g = float64(dy[i, j])
            s += g
            sp += g * xhat[i, j]
        partial_dy[r, j] = s
        partial_product[r, j] = sp


@cuda_kernel(lambda t: void(array(t, 1), array(float64, 2), array(float64, 1), float64))
def _finish_mean(mean_t, partial, mean, rows):
    """Stage two, one block per column: mean = the sum of the column's partials / rows (float64, and in mean_t's
    dtype)."""
    shared = cuda.shared.array((1, THREADS_PER_BLOCK), float64)
    for j in range(cuda.blockIdx.x, mean.shape[0], cuda.gridDim.x):
        s = 0.0
        for r in range(cuda.threadIdx.x, partial.shape[0], THREADS_PER_BLOCK):
            s += partial[r, j]
        total = row_reduce(shared, 0, cuda.threadIdx.x, s, False)
        if cuda.threadIdx.x == 0:
            mean[j] = total / rows
            mean_t[j] = total / rows


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(float64, 2), float64, float64,
                            t, t))
def _finish_variance(mean_t, inv_std, running_mean, running_var, partial, rows, eps, momentum, one_minus):
    """Stage two, one block per column: biased variance, inv_std = 1 / sqrt(var + eps), running statistics."""
    shared = cuda.shared.array((1, THREADS_PER_BLOCK), float64)
    for j in range(cuda.blockIdx.x, mean_t.shape[0], cuda.gridDim.x):
        s = 0.0
        for r in range(cuda.threadIdx.x, partial.shape[0], THREADS_PER_BLOCK):
            s += partial[r, j]
        var = row_reduce(shared, 0, cuda.threadIdx.x, s, False) / rows
        if cuda.threadIdx.x == 0:
            inv_std[j] = 1.0 / math.sqrt(var + eps)
            running_mean[j] = momentum * running_mean[j] + one_minus * mean_t[j]
            running_var[j] = momentum * running_var[j] + one_minus * mean_t.dtype.type(var)


@cuda_kernel(lambda t: void(array(t, 2), array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(t, 2), array(t, 2)))
def _normalise(x, gamma, beta, mean_t, inv_std, xhat, y):
    """Elementwise: xhat = (x - mean) * inv_std; y = gamma * xhat + beta."""
    n, m = x.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        h = (x[i, j] - mean_t[j]) * inv_std[j]
        xhat[i, j] = h
        y[i, j] = gamma[j] * h + beta[j]


@cuda_kernel(lambda t: void(array(t, 2), array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(t, 2), t))
def _batch_norm_eval(x, gamma, beta, running_mean, running_var, y, eps):
    n, m = x.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        scale = gamma[j] / math.sqrt(running_var[j] + eps)
        y[i, j] = (x[i, j] - running_mean[j]) * scale + beta[j]


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(float64, 2), array(float64, 2)))
def _finish_backward(dbeta, dgamma, partial_dy, partial_product):
    """Stage two, one block per column: dbeta and dgamma from their partial sums."""
    shared = cuda.shared.array((1, THREADS_PER_BLOCK), float64)
    for j in range(cuda.blockIdx.x, dbeta.shape[0], cuda.gridDim.x):
        s = 0.0
        sp = 0.0
        for r in range(cuda.threadIdx.x, partial_dy.shape[0], THREADS_PER_BLOCK):
            s += partial_dy[r, j]
            sp += partial_product[r, j]
        s = row_reduce(shared, 0, cuda.threadIdx.x, s, False)
        sp = row_reduce(shared, 0, cuda.threadIdx.x, sp, False)
        if cuda.threadIdx.x == 0:
            dbeta[j] = s
            dgamma[j] = sp


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(t, 2),
                            t))
def _batch_norm_dx(dy, xhat, gamma, inv_std, dbeta, dgamma, dx, rows):
    """Elementwise: dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma); dx may alias dy."""
    n, m = dx.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        scale = gamma[j] * inv_std[j] / rows
        dx[i, j] = scale * (rows * dy[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


def _reduction_chunks(rows: int, columns: int) -> int:
    """How many strided row shares (stage-one threads per column) a column reduction uses."""
    return max(1, min(-(-rows // REDUCTION_MIN_ROWS), -(-REDUCTION_THREADS // max(columns, 1))))


def batch_norm_train(x, gamma, beta, eps: float, momentum: float, running_mean, running_var, y, xhat,
                     inv_std) -> None:
    """Batch normalisation of x (M, C) by its column mean and biased variance (two passes, float64 sums);
    inv_std = 1 / sqrt(var + eps), xhat, y = gamma * xhat + beta, running stats updated the Keras way.

    Each column sum runs in two stages: many threads per column sum strided rows into float64 partials, then
    one block per column adds its partials up in shared memory.
    """
    xp = array_module(x)
    rows, columns = x.shape
    partial = xp.empty((_reduction_chunks(rows, columns), columns), np.float64)
    mean = xp.empty(columns, np.float64)
    mean_t = xp.empty(columns, x.dtype)
    _column_partials.launch(partial.size, (x,), tail=partial)
    _finish_mean.launch(columns * THREADS_PER_BLOCK, (mean_t,), (float(rows),), (partial, mean))
    _deviation_partials.launch(partial.size, (x,), tail=(mean, partial))
    t = x.dtype.type
    _finish_variance.launch(columns * THREADS_PER_BLOCK, (mean_t, inv_std, running_mean, running_var),
            (float(rows), float(eps), t(momentum), t(1 - momentum)), (partial,))
    _normalise.launch(x.size, (x, gamma, beta, mean_t, inv_std, xhat, y))


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps: float, y) -> None:
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, for x (M, C)."""
    _batch_norm_eval.launch(x.size, (x, gamma, beta, running_mean, running_var, y), (eps,))


def batch_norm_backward(dy, xhat, gamma, inv_std, dx, dgamma, dbeta) -> None:
    """dbeta = column sums of dy, dgamma = column sums of dy * xhat (float64 sums, in two stages as in
    ``batch_norm_train``); dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma); dx may be dy."""
    xp = array_module(dy)
    rows, columns = dy.shape
    partials = xp.empty((2, _reduction_chunks(rows, columns), columns), np.float64)
    _product_partials.launch(partials[0].size, (dy, xhat), tail=(partials[0], partials[1]))
    _finish_backward.launch(columns * THREADS_PER_BLOCK, (dbeta, dgamma), tail=(partials[0], partials[1]))
    # dx comes last: for host arrays its copy-back wins over dy's when the two are one array
    _batch_norm_dx.launch(dx.size, (dy, xhat, gamma, inv_std, dbeta, dgamma, dx), (rows,))
