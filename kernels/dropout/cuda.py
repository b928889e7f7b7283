"""Numba CUDA dropout and random shifts, one thread per element: the same hash as the reference."""

from __future__ import annotations

import numpy as np
from numba import cuda, int64, uint64, void

from .. import as_rows
from ..numba_cuda import array, contiguous_output, cuda_kernel, write_back
from ..scalar import (
    dropout_constants,
    dropout_draw,
    image_shift,
    murmur_finish,
    murmur_round,
    shift_constants,
    with_helpers,
)

_dropout_draw = cuda.jit(device=True)(
    with_helpers(
        dropout_draw,
        murmur_round=cuda.jit(device=True)(murmur_round),
        murmur_finish=cuda.jit(device=True)(murmur_finish),
    )
)
_image_shift = cuda.jit(device=True)(with_helpers(image_shift, dropout_draw=_dropout_draw))


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), uint64, uint64, t))
def _dropout(x, mask, out, key, threshold, scale):
    """(rows, last) matrices, one thread per element: flat index k = i * last + j."""
    n, m = x.shape
    zero = x.dtype.type(0.0)
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        keep = scale if _dropout_draw(key, np.uint64(k)) >= threshold else zero
        mask[i, j] = keep
        out[i, j] = x[i, j] * keep


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2)))
def _dropout_backward(dout, mask, dx):
    n, m = dx.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        dx[i, j] = dout[i, j] * mask[i, j]


@cuda_kernel(lambda t: void(array(t, 4), array(t, 4), uint64, uint64, uint64, int64, int64, int64))
def _random_shift(x, out, key, span_h, span_w, max_h, max_w, sign):
    """One thread per output element: out[n, i, j, c] = x[n, i - down, j - right, c] for image n's shifts (times
    ``sign``: -1 shifts back), zero where that falls outside x."""
    _, h_, w_, c_ = out.shape
    zero = out.dtype.type(0.0)
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        j = r % w_
        r //= w_
        i = r % h_
        n = r // h_
        si = i - sign * _image_shift(key, np.uint64(2 * n), span_h, max_h)
        sj = j - sign * _image_shift(key, np.uint64(2 * n + 1), span_w, max_w)
        if si >= 0 and si < h_ and sj >= 0 and sj < w_:
            out[n, i, j, c] = x[n, si, sj, c]
        else:
            out[n, i, j, c] = zero


def dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """mask = 1 / (1 - rate) where the hash of (seed, step, flat index) gives u >= rate, else 0; out = x * mask
    (see ``reference.dropout``); out may be x."""
    key, threshold, scale = dropout_constants(seed, step, rate, x.dtype)
    results = [contiguous_output(mask), contiguous_output(out)]
    # out comes last: for host arrays its copy-back wins over x's when the two are one array
    _dropout.launch(x.size, (as_rows(x), *(as_rows(r) for r in results)), (key, threshold, scale))
    write_back(mask, results[0])
    write_back(out, results[1])


def dropout_backward(dout, mask, dx) -> None:
    """dx = dout * mask (dx may be dout)."""
    result = contiguous_output(dx)
    _dropout_backward.launch(dx.size, (as_rows(dout), as_rows(mask), as_rows(result)))
    write_back(dx, result)


def _shift(x, max_h: int, max_w: int, seed: int, step: int, out, sign: int) -> None:
    """Both directions in one kernel: ``sign`` 1 shifts forward, -1 back (the adjoint)."""
    key, span_h, span_w = shift_constants(seed, step, max_h, max_w)
    _random_shift.launch(out.size, (x, out), (key, span_h, span_w, max_h, max_w, sign))


def random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """out = every image of x (N, H, W, C) translated by its (down, right) shift hashed from (seed, step, image),
    zero where the source falls outside x (see ``reference.random_shift``); out must not be x."""
    _shift(x, max_h, max_w, seed, step, out, 1)


def random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """The adjoint of ``random_shift`` with the same (seed, step): every image translated back, zero filled."""
    _shift(dout, max_h, max_w, seed, step, dx, -1)
