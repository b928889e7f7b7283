"""Numba CPU bias + activation (by blocks of rows, serial or parallel), its backward, and the bias gradient."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .. import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH
from ..batchnorm.cpu import column_sums
from ..numba_cpu import BLOCK_ROWS, add_partials, block_partials, jit, row_blocks, serial_and_parallel
from ..scalar import activate

_activate = jit(inline="always")(activate)


ROW_BLOCK = 256
"""Rows per block of ``_bias_activation``: its parallel variant spreads the blocks over threads, and the activation
is dispatched once per block, outside the element loops."""


@jit(inline="always")
def _activate_block(kind, z, b, alpha, a, d, one, zero):
    """Bias + activation over a block of rows, inlined with a constant ``kind``: the element loop holds no branch
    on the activation, so it vectorises (one if/elif per row ran six times slower on 16-column rows)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            z[i, j] = v
            f, df = _activate(kind, v, alpha, one, zero)
            a[i, j] = f
            if d is not None:
                d[i, j] = df


@jit(inline="always")
def _softmax_block(z, b, a, one, zero):
    for i in range(z.shape[0]):
        top = z[i, 0] + b[0]
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            z[i, j] = v
            top = max(top, v)
        total = zero
        for j in range(z.shape[1]):
            e = math.exp(z[i, j] - top)
            a[i, j] = e
            total += e
        inv = one / total
        for j in range(z.shape[1]):
            a[i, j] *= inv


@jit
def bias_activation_rows(z, b, activation, alpha, a, d, lo, hi):
    """Rows lo..hi of ``_bias_activation``, as slices indexed from 0 (which vectorise twice as well as rows indexed
    from lo); a call of its own, because slices taken inside a prange loop trip Numba's parallel array analysis."""
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    alpha_t = z.dtype.type(alpha)
    zk, ak = z[lo:hi], a[lo:hi]
    dk = None if d is None else d[lo:hi]
    if activation == SOFTMAX:
        _softmax_block(zk, b, ak, one, zero)
    elif activation == RELU:
        _activate_block(RELU, zk, b, alpha_t, ak, dk, one, zero)
    elif activation == LEAKY_RELU:
        _activate_block(LEAKY_RELU, zk, b, alpha_t, ak, dk, one, zero)
    elif activation == SIGMOID:
        _activate_block(SIGMOID, zk, b, alpha_t, ak, dk, one, zero)
    elif activation == TANH:
        _activate_block(TANH, zk, b, alpha_t, ak, dk, one, zero)
    else:
        _activate_block(IDENTITY, zk, b, alpha_t, ak, dk, one, zero)


def _bias_activation(z, b, activation, alpha, a, d):
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used); by blocks of rows."""
    n = z.shape[0]
    for k in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
        bias_activation_rows(z, b, activation, alpha, a, d, k * ROW_BLOCK, min((k + 1) * ROW_BLOCK, n))


@jit
def _derivative_rows(dz, da, d, acc):
    """dz = da * d over a block of rows, their column sums added to ``acc``: slices indexed from 0, in a call of
    its own (as ``bias_activation_rows``), vectorise where rows indexed from the block's start did not."""
    for i in range(dz.shape[0]):
        for j in range(dz.shape[1]):
            g = da[i, j] * d[i, j]
            dz[i, j] = g
            acc[j] += g


def _activation_backward(dz, da, d, a, activation, db, partial):
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz. dz comes first (size).

    Rows are split into ``len(partial)`` blocks of ``BLOCK_ROWS``, each summing its bias gradient into its own row
    of ``partial`` (added up in order at the end, so db does not depend on the thread count): rows stay the inner,
    contiguous, vectorised loop, and the softmax test sits outside the row loop.
    """
    n, m = dz.shape
    chunks = partial.shape[0]
    zero = dz.dtype.type(0.0)
    for c in prange(chunks):
        acc = partial[c]
        for j in range(m):
            acc[j] = zero
        lo = c * BLOCK_ROWS
        hi = min(lo + BLOCK_ROWS, n)
        if activation == SOFTMAX:
            for i in range(lo, hi):
                s = zero
                for j in range(m):
                    s += da[i, j] * a[i, j]
                for j in range(m):
                    g = a[i, j] * (da[i, j] - s)
                    dz[i, j] = g
                    acc[j] += g
        else:
            _derivative_rows(dz[lo:hi], da[lo:hi], d[lo:hi], acc)
    add_partials(partial, db)


# Parallel from these sizes of the first argument (z, dz): measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
BIAS_ACTIVATION_PARALLEL_MIN = 100_000
ACTIVATION_BACKWARD_PARALLEL_MIN = 100_000

_bias_activation_kernel = serial_and_parallel(_bias_activation, BIAS_ACTIVATION_PARALLEL_MIN)


_activation_backward_kernel = serial_and_parallel(_activation_backward, ACTIVATION_BACKWARD_PARALLEL_MIN)


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    _bias_activation_kernel(z, b, activation, alpha, a, d)


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    partial = block_partials(dz.shape[0], db)
    _activation_backward_kernel(dz, da, d, a, activation, db, partial)


def bias_gradient(dz, db) -> None:
    """db = column sums of dz (float64 sums by fixed blocks of rows, ``batchnorm.cpu.column_sums``): one compiled
    call. NumPy's ``sum(axis=0)`` of the quick CNN's last 64 x 10 dL/dz took 4 us alone, but 27-35 us in a replayed
    step, whose large kernels had just pushed NumPy's reduction machinery out of the caches (2-core Intel Xeon VM)."""
    column_sums(dz, None, np.empty((row_blocks(dz.shape[0]), dz.shape[1])), db)
