"""Numba CUDA bias + activation and its backward: elementwise work grid-strided, softmax by ROW_LANES threads per
row, the bias gradient by blocks of column tiles (``_column_sums``); both reduce by fixed trees (deterministic)."""

from __future__ import annotations

import math

from numba import boolean, config, cuda, float64, int32, void

from .. import SOFTMAX
from ..numba_cuda import THREADS_PER_BLOCK, array, cuda_kernel, row_reduce
from ..scalar import activate

activate_on_device = cuda.jit(device=True)(activate)
"""``scalar.activate`` as a CUDA device function (the pooling family's fused kernel calls it too)."""


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
        f, df = activate_on_device(activation, v, alpha, one, zero)
        a[i, j] = f
        if write_d:
            d[i, j] = df


ROW_LANES = 8 if config.ENABLE_CUDASIM else 32
"""Threads along each row of the softmax kernels (a warp on a device): each takes every ROW_LANES-th column."""
ROWS_PER_BLOCK = THREADS_PER_BLOCK // ROW_LANES


@cuda_kernel(lambda t: void(array(t, 2), array(t, 1), array(t, 2)))
def _softmax_forward(z, b, a):
    """Softmax, ROW_LANES threads per row (grid-strided over blocks of rows): z += b; a = exp(z - max) / sum."""
    n, m = z.shape
    lane = cuda.threadIdx.x % ROW_LANES
    row = cuda.threadIdx.x // ROW_LANES
    shared = cuda.shared.array((ROWS_PER_BLOCK, ROW_LANES), float64)
    for first in range(cuda.blockIdx.x * ROWS_PER_BLOCK, n, cuda.gridDim.x * ROWS_PER_BLOCK):
        i = first + row
        top = -math.inf
        if i < n:
            for j in range(lane, m, ROW_LANES):
                v = z[i, j] + b[j]
                z[i, j] = v
                if v > top:
                    top = v
        top_t = z.dtype.type(row_reduce(shared, row, lane, top, True))
        total = 0.0
        if i < n:
            for j in range(lane, m, ROW_LANES):
                e = math.exp(z[i, j] - top_t)
                a[i, j] = e
                total += e
        total_t = z.dtype.type(row_reduce(shared, row, lane, total, False))
        if i < n:
            for j in range(lane, m, ROW_LANES):
                a[i, j] /= total_t


COLUMN_TILE = 8 if config.ENABLE_CUDASIM else 32
"""Columns a block of the column sums takes at once: adjacent threads read adjacent columns (coalesced)."""
ROW_GROUPS = THREADS_PER_BLOCK // COLUMN_TILE
"""Threads down each column of a tile (a power of two): each sums every ROW_GROUPS-th row, then a tree adds them."""


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(t, 1), boolean, boolean))
def _column_sums(da, d, dz, db, multiply, write):
    """db = column sums of dz, where dz = da * d when ``multiply`` (written when ``write``, else dz is a stand-in
    of da's shape; dz may alias da), else dz is da.

    A block per tile of COLUMN_TILE columns (grid-strided over the tiles), ROW_GROUPS threads down each column,
    summing in float64; the row groups' partial sums are added by a fixed tree in shared memory, so every run
    adds in the same order (deterministic) whatever the grid."""
    n, m = dz.shape
    column = cuda.threadIdx.x % COLUMN_TILE
    group = cuda.threadIdx.x // COLUMN_TILE
    partial = cuda.shared.array((COLUMN_TILE, ROW_GROUPS), float64)
    for first in range(cuda.blockIdx.x * COLUMN_TILE, m, cuda.gridDim.x * COLUMN_TILE):
        j = first + column
        s = 0.0
        if j < m:
            for i in range(group, n, ROW_GROUPS):
                if multiply:
                    g = da[i, j] * d[i, j]
                    if write:
                        dz[i, j] = g
                    s += g
                else:
                    s += da[i, j]
        total = row_reduce(partial, column, group, s, False)  # the column's row groups, by the same fixed tree
        if group == 0 and j < m:
            db[j] = total


def launch_column_sums(da, d, dz, db, multiply: bool, write: bool = True) -> None:
    """``_column_sums`` over (rows, columns) arrays: db = column sums of da * d (into dz too when ``write``)
    when ``multiply``, else of da."""
    tiles = -(-dz.shape[1] // COLUMN_TILE)
    _column_sums.launch(tiles * THREADS_PER_BLOCK, (da, d, dz, db), (multiply, write))


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2)))
def _softmax_backward_rows(da, a, dz):
    """ROW_LANES threads per row: dz = a * (da - sum(da * a)); dz may alias da (the row's sum is complete, every
    lane having read its elements, before any lane writes)."""
    n, m = dz.shape
    lane = cuda.threadIdx.x % ROW_LANES
    row = cuda.threadIdx.x // ROW_LANES
    shared = cuda.shared.array((ROWS_PER_BLOCK, ROW_LANES), float64)
    for first in range(cuda.blockIdx.x * ROWS_PER_BLOCK, n, cuda.gridDim.x * ROWS_PER_BLOCK):
        i = first + row
        s = 0.0
        if i < n:
            for j in range(lane, m, ROW_LANES):
                s += da[i, j] * a[i, j]
        s_t = dz.dtype.type(row_reduce(shared, row, lane, s, False))
        if i < n:
            for j in range(lane, m, ROW_LANES):
                dz[i, j] = a[i, j] * (da[i, j] - s_t)


def _launch_rows(kernel, rows: int, arrays: tuple) -> None:
    """``kernel`` over ``rows`` rows, ROWS_PER_BLOCK rows to a block."""
    kernel.launch(-(-rows // ROWS_PER_BLOCK) * THREADS_PER_BLOCK, arrays)


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    n, m = z.shape
    if activation == SOFTMAX:
        _launch_rows(_softmax_forward, n, (z, b, a))
    else:
        # Without d, a stands in for it; it comes after d so that, for host arrays, its copy-back wins.
        stand_in = a if d is None else d
        _bias_activation.launch(n * m, (z, b, stand_in, a), (activation, alpha, d is not None))


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    if activation == SOFTMAX:
        _launch_rows(_softmax_backward_rows, dz.shape[0], (da, a, dz))
        launch_column_sums(dz, dz, dz, db, False)
    else:
        launch_column_sums(da, d, dz, db, True)
