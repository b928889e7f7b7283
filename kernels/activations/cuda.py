"""Numba CUDA bias + activation and its backward: elementwise work grid-strided, softmax one thread per row,
the bias gradient one thread per column."""

from __future__ import annotations

import math

from numba import boolean, cuda, int32, void

from .. import SOFTMAX
from ..numba_cuda import array, cuda_kernel
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


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(t, 1)))
def _backward_columns(da, d, dz, db):
    """One thread per column: dz = da * d down the column, db = its sum (dz may alias da)."""
    n, m = dz.shape
    zero = dz.dtype.type(0.0)
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = zero
        for i in range(n):
            g = da[i, j] * d[i, j]
            dz[i, j] = g
            s += g
        db[j] = s


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


@cuda_kernel(lambda t: void(array(t, 2), array(t, 1)))
def _column_sums(x, out):
    """One thread per column: out[j] = sum_i x[i, j]."""
    n, m = x.shape
    zero = x.dtype.type(0.0)
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = zero
        for i in range(n):
            s += x[i, j]
        out[j] = s


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
    n, m = dz.shape
    if activation == SOFTMAX:
        _softmax_backward_rows.launch(n, (da, a, dz))
        _column_sums.launch(m, (dz, db))
    else:
        _backward_columns.launch(m, (da, d, dz, db))
