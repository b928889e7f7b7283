"""Numba CPU im2col / col2im on C-contiguous arrays, copying contiguous runs of each window row."""

from __future__ import annotations

import numpy as np
from numba import prange

from ..numba_cpu import contiguous_output, jit, serial_and_parallel, write_back


@jit(inline="always")
def _interior_columns(ow, w_, kw, stride_w, pad_left):
    """The output columns j0 <= j < j1 whose windows lie wholly inside the input's width."""
    j0 = 0
    while j0 < ow and j0 * stride_w - pad_left < 0:
        j0 += 1
    j1 = ow
    while j1 > j0 and (j1 - 1) * stride_w - pad_left + kw > w_:
        j1 -= 1
    return j0, j1


@jit(inline="always")
def _im2col_one_channel(out, xf, n, i, h_, w_, ow, kh, kw, stride_h, stride_w, pad_top, pad_left, j0, j1):
    """One output row (n, i) of a one-channel im2col into ``out`` (its OW windows): window rows are a few elements
    long, too short for the run copies of ``_im2col`` to pay, so each is copied as a slice, with no bounds test
    for the interior columns ``j0 <= j < j1`` (the quick CNN's conv1 im2col, 64 x 28 x 28 x 1, took 0.50 ms
    instead of 0.85 ms element by element, one thread, 2-core AMD EPYC VM, 2026-12-05)."""
    zero = out.dtype.type(0.0)
    area = kh * kw
    for p in range(kh):
        hh = i * stride_h + p - pad_top
        if hh < 0 or hh >= h_:
            for j in range(ow):
                for q in range(kw):
                    out[j * area + p * kw + q] = zero
            continue
        row = xf[(n * h_ + hh) * w_:(n * h_ + hh + 1) * w_]
        for j in range(j0, j1):
            src = row[j * stride_w - pad_left:j * stride_w - pad_left + kw]
            dst = out[j * area + p * kw:j * area + p * kw + kw]
            for q in range(kw):
                dst[q] = src[q]
        for j in range(ow):
            if j0 <= j < j1:  # the edge columns only
                continue
            for q in range(kw):
                ww = j * stride_w - pad_left + q
                out[j * area + p * kw + q] = row[ww] if 0 <= ww < w_ else zero


def _im2col(cols, x, stride_h, stride_w, pad_top, pad_left):
    """im2col on C-contiguous arrays. For each window row (n, i, j, p) the valid q form one run of x's row that is
    contiguous in both arrays, copied as one flat loop of (q_hi - q_lo) * C elements; the rest is zeroed. The
    runs are copied between slices indexed from 0, which vectorises (offset indexing ran five times slower)."""
    n_, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    zero = cols.dtype.type(0.0)
    row = kw * c_
    j0, j1 = _interior_columns(ow, w_, kw, stride_w, pad_left)
    for r in prange(n_ * oh):
        n = r // oh
        i = r - n * oh
        if c_ == 1:
            window_rows = cf[r * ow * kh * kw:(r + 1) * ow * kh * kw]
            _im2col_one_channel(window_rows, xf, n, i, h_, w_, ow, kh, kw, stride_h, stride_w, pad_top, pad_left,
                                j0, j1)
            continue
        for j in range(ow):
            w0 = j * stride_w - pad_left
            lo = min(max(0, -w0), kw) * c_
            hi = max(min(kw, w_ - w0) * c_, lo)
            for p in range(kh):
                hh = i * stride_h + p - pad_top
                dst = ((((n * oh + i) * ow + j) * kh + p) * kw) * c_
                d = cf[dst:dst + row]
                if hh < 0 or hh >= h_:
                    for t in range(row):
                        d[t] = zero
                    continue
                src = ((n * h_ + hh) * w_ + w0) * c_
                for t in range(lo):
                    d[t] = zero
                run = xf[src + lo:src + hi]
                out = d[lo:hi]
                for t in range(run.shape[0]):
                    out[t] = run[t]
                for t in range(hi, row):
                    d[t] = zero


def _col2im(cols, dx, stride_h, stride_w, pad_top, pad_left):
    """col2im on C-contiguous arrays: dx zeroed, then every valid run of cols added back (as in ``_im2col``);
    parallel over images, which own disjoint parts of dx."""
    n_, h_, w_, c_ = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf = dx.reshape(-1)
    cf = cols.reshape(-1)
    zero = dx.dtype.type(0.0)
    image = h_ * w_ * c_
    for n in prange(n_):
        mine = xf[n * image:(n + 1) * image]
        for t in range(image):
            mine[t] = zero
        for i in range(oh):
            for j in range(ow):
                w0 = j * stride_w - pad_left
                lo = min(max(0, -w0), kw) * c_
                hi = max(min(kw, w_ - w0) * c_, lo)
                for p in range(kh):
                    hh = i * stride_h + p - pad_top
                    if hh < 0 or hh >= h_:
                        continue
                    src = ((((n * oh + i) * ow + j) * kh + p) * kw) * c_
                    dst = (hh * w_ + w0) * c_
                    run = cf[src + lo:src + hi]
                    target = mine[dst + lo:dst + hi]
                    for t in range(run.shape[0]):
                        target[t] += run[t]


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
IM2COL_PARALLEL_MIN = 28_800
COL2IM_PARALLEL_MIN = 112_896

_im2col_kernel = serial_and_parallel(_im2col, IM2COL_PARALLEL_MIN)


_col2im_kernel = serial_and_parallel(_col2im, COL2IM_PARALLEL_MIN)


def im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """cols[n, i, j, p, q, c] = x[n, i*stride_h + p - pad_top, j*stride_w + q - pad_left, c], zero outside x;
    x (N, H, W, C), cols (N, OH, OW, KH, KW, C) (see ``reference.im2col``)."""
    result = contiguous_output(cols)
    _im2col_kernel(result, np.ascontiguousarray(x), stride_h, stride_w, pad_top, pad_left)
    write_back(cols, result)


def col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """The adjoint of ``im2col``: dx (N, H, W, C) = the sum of every cols entry that im2col reads from it."""
    result = contiguous_output(dx)
    _col2im_kernel(np.ascontiguousarray(cols), result, stride_h, stride_w, pad_top, pad_left)
    write_back(dx, result)
