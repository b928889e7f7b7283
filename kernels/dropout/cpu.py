"""Numba CPU dropout and random shifts: the same hash as the reference, bit for bit."""

from __future__ import annotations

import numpy as np
from numba import prange

from .. import as_rows
from ..numba_cpu import contiguous_output, jit, serial_and_parallel, write_back
from ..scalar import (
    dropout_constants,
    dropout_draw,
    image_shift,
    murmur_finish,
    murmur_round,
    shift_constants,
    with_helpers,
)

_dropout_draw = jit(inline="always")(
    with_helpers(
        dropout_draw,
        murmur_round=jit(inline="always")(murmur_round),
        murmur_finish=jit(inline="always")(murmur_finish),
    )
)
_image_shift = jit(inline="always")(with_helpers(image_shift, dropout_draw=_dropout_draw))


def _dropout(out, x, mask, key, threshold, scale):
    """Rows of (rows, last) matrices: element (i, j) has flat index i * last + j."""
    rows, last = x.shape
    zero = x.dtype.type(0.0)
    width = np.uint64(last)
    for i in prange(rows):
        base = np.uint64(i) * width
        for j in range(last):
            m = scale if _dropout_draw(key, base + np.uint64(j)) >= threshold else zero
            mask[i, j] = m
            out[i, j] = x[i, j] * m


def _dropout_backward(dx, dout, mask):
    for i in prange(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = dout[i, j] * mask[i, j]


def _random_shift(out, x, key, span_h, span_w, max_h, max_w, sign):
    """Random shifts on C-contiguous arrays, by output rows (n, i): the image's shifts (times ``sign``: -1 shifts
    back) name the source row i - down, and its valid columns form one run contiguous in both arrays, copied as
    one flat loop of (W - |right|) * C elements between slices indexed from 0 (which vectorises, as in
    ``_im2col``); the rest of the row is zeroed."""
    n_, h_, w_, c_ = x.shape
    xf = x.reshape(-1)
    of = out.reshape(-1)
    zero = out.dtype.type(0.0)
    row = w_ * c_
    for r in prange(n_ * h_):
        n = r // h_
        i = r - n * h_
        d = of[r * row:(r + 1) * row]
        source = i - sign * _image_shift(key, np.uint64(2 * n), span_h, max_h)
        if source < 0 or source >= h_:
            for t in range(row):
                d[t] = zero
            continue
        right = sign * _image_shift(key, np.uint64(2 * n + 1), span_w, max_w)
        lo = min(max(right, 0), w_) * c_
        hi = max(min(w_ + right, w_) * c_, lo)
        start = (n * h_ + source) * row + lo - right * c_
        for t in range(lo):
            d[t] = zero
        run = xf[start:start + hi - lo]
        target = d[lo:hi]
        for t in range(run.shape[0]):
            target[t] = run[t]
        for t in range(hi, row):
            d[t] = zero


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
DROPOUT_PARALLEL_MIN = 9_984
DROPOUT_BACKWARD_PARALLEL_MIN = 99_968
RANDOM_SHIFT_PARALLEL_MIN = 100_352

_dropout_kernel = serial_and_parallel(_dropout, DROPOUT_PARALLEL_MIN)


_dropout_backward_kernel = serial_and_parallel(_dropout_backward, DROPOUT_BACKWARD_PARALLEL_MIN)


_random_shift_kernel = serial_and_parallel(_random_shift, RANDOM_SHIFT_PARALLEL_MIN)


def dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """mask = 1 / (1 - rate) where the hash of (seed, step, flat index) gives u >= rate, else 0; out = x * mask
    (see ``reference.dropout``); out may be x."""
    key, threshold, scale = dropout_constants(seed, step, rate, x.dtype)
    results = [contiguous_output(out), contiguous_output(mask)]
    _dropout_kernel(as_rows(results[0]), as_rows(x), as_rows(results[1]), key, threshold, scale)
    write_back(out, results[0])
    write_back(mask, results[1])


def dropout_backward(dout, mask, dx) -> None:
    """dx = dout * mask (dx may be dout)."""
    result = contiguous_output(dx)
    _dropout_backward_kernel(as_rows(result), as_rows(dout), as_rows(mask))
    write_back(dx, result)


def _shift(x, max_h: int, max_w: int, seed: int, step: int, out, sign: int) -> None:
    """Both directions in one kernel: ``sign`` 1 shifts forward, -1 back (the adjoint)."""
    key, span_h, span_w = shift_constants(seed, step, max_h, max_w)
    result = contiguous_output(out)
    _random_shift_kernel(result, np.ascontiguousarray(x), key, span_h, span_w, max_h, max_w, sign)
    write_back(out, result)


def random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """out = every image of x (N, H, W, C) translated by its (down, right) shift hashed from (seed, step, image),
    zero where the source falls outside x (see ``reference.random_shift``); out must not be x."""
    _shift(x, max_h, max_w, seed, step, out, 1)


def random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """The adjoint of ``random_shift`` with the same (seed, step): every image translated back, zero filled."""
    _shift(dout, max_h, max_w, seed, step, dx, -1)
