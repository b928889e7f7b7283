"""Numba CUDA bias + activation and its backward: elementwise work grid-strided, softmax one thread per row,
the bias gradient by blocks of column tiles (``_column_sums``)."""

from __future__ import annotations

import math

from numba import boolean, config, cuda, float64, int32, void

from .. import SOFTMAX
from ..numba_cuda import THREADS_PER_BLOCK, array, cuda_kernel
from ..scalar import activate

_activate = cuda.jit(device=True)(activate)


@cuda_kernel(lambda t: void(array(t, 2), array(t, 1), array(t, 2), array(t, 2), int32, t, boolean))
def _bias_activation(z, b, d, a, activation, alpha, write_d):
    """Elementwise activations: z += b; a = f(z); d = f'(z) when write_d (else d is a stand-in, untouched)."""
    n, m = z.shape
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        v = z[i, j] + b[j]
        z[i, j] = v
        f, df = _activate(activation, v, alpha, one, zero)
        a[i, j] = f
        if write_d:
            d[i, j] = df


@cuda_kernel(lambda t: void(array(t, 2), array(t, 1), array(t, 2)))
def _softmax_forward(z, b, a):
    """Softmax, one thread per row: z += b; a = exp(z - max) / sum."""
    n, m = z.shape
    zero = z.dtype.type(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        top = z[i, 0] + b[0]
        for j in range(m):
            v = z[i, j] + b[j]
            z[i, j] = v
            if v > top:
                top = v
        total = zero
        for j in range(m):
            e = math.exp(z[i, j] - top)
            a[i, j] = e
            total += e
        for j in range(m):
            a[i, j] /= total


COLUMN_TILE = 8 if config.ENABLE_CUDASIM else 32
"""Columns a block of the column sums takes at once: adjacent threads read adjacent columns (coalesced)."""
ROW_GROUPS = THREADS_PER_BLOCK // COLUMN_TILE
"""Threads down each column of a tile (a power of two): each sums every ROW_GROUPS-th row, then a tree adds them."""


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(t, 1), boolean))
def _column_sums(da, d, dz, db, multiply):
    """db = column sums of dz, where dz = da * d when ``multiply`` (written; dz may alias da), else dz is da.

    A block per tile of COLUMN_TILE columns (grid-strided over the tiles), ROW_GROUPS threads down each column,
    summing in float64; the row groups' partial sums are added by a fixed tree in shared memory, so every run
    adds in the same order (deterministic) whatever the grid."""
    n, m = dz.shape
    column = cuda.threadIdx.x % COLUMN_TILE
    group = cuda.threadIdx.x // COLUMN_TILE
    partial = cuda.shared.array((ROW_GROUPS, COLUMN_TILE), float64)
    for first in range(cuda.blockIdx.x * COLUMN_TILE, m, cuda.gridDim.x * COLUMN_TILE):
        j = first + column
        s = 0.0
        if j < m:
            for i in range(group, n, ROW_GROUPS):
                if multiply:
                    g = da[i, j] * d[i, j]
                    dz[i, j] = g
                    s += g
                else:
                    s += da[i, j]
        partial[group, column] = s
        cuda.syncthreads()
        half = ROW_GROUPS // 2
        while half > 0:
            if group < half:
                partial[group, column] += partial[group + half, column]
            cuda.syncthreads()
            half //= 2
        if group == 0 and j < m:
            db[j] = partial[0, column]
        cuda.syncthreads()  # every sum is stored before the next tile writes partial again


def _launch_column_sums(da, d, dz, db, multiply: bool) -> None:
    tiles = -(-dz.shape[1] // COLUMN_TILE)
    _column_sums.launch(tiles * THREADS_PER_BLOCK, (da, d, dz, db), (multiply,))


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2)))
def _softmax_backward_rows(da, a, dz):
    """One thread per row: dz = a * (da - sum(da * a)); dz may alias da (a row is read, then written)."""
    n, m = dz.shape
    zero = dz.dtype.type(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = zero
        for j in range(m):
            s += da[i, j] * a[i, j]
        for j in range(m):
            dz[i, j] = a[i, j] * (da[i, j] - s)


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    n, m = z.shape
    if activation == SOFTMAX:
        _softmax_forward.launch(n, (z, b, a))
    else:
        # Without d, a stands in for it; it comes after d so that, for host arrays, its copy-back wins.
        stand_in = a if d is None else d
        _bias_activation.launch(n * m, (z, b, stand_in, a), (activation, alpha, d is not None))


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    if activation == SOFTMAX:
        _softmax_backward_rows.launch(dz.shape[0], (da, a, dz))
        _launch_column_sums(dz, dz, dz, db, False)
    else:
        _launch_column_sums(da, d, dz, db, True)
