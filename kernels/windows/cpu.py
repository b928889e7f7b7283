"""Numba CPU im2col / col2im on C-contiguous arrays, copying contiguous runs of each window row."""

from __future__ import annotations

import numpy as np
from numba import prange

from ..numba_cpu import contiguous_output, jit, serial_and_parallel, write_back


@jit(inline="always")
def _one_channel_taps(out, row, w_, ow, kw, stride_w, pad_left, p):
    """Window row ``p`` of every window of one output row, from the input row ``row``, tap by tap: tap q of window
    j is ``row[j * stride_w + q - pad_left]``, so each tap is a loop over the windows reading ``row`` in order and
    writing one column of ``out`` (OW, KH * KW), zero where the window overhangs the row."""
    zero = out.dtype.type(0.0)
    for q in range(kw):
        column = p * kw + q
        shift = q - pad_left
        lo = min(ow, max(0, -(shift // stride_w)))  # the first window whose tap lies inside the row
        hi = max(lo, min(ow, (w_ - 1 - shift) // stride_w + 1))  # past the last one
        for j in range(lo):
            out[j, column] = zero
        if stride_w == 1:
            taps = row[lo + shift:hi + shift]
            for t in range(hi - lo):
                out[lo + t, column] = taps[t]
        else:
            for j in range(lo, hi):
                out[j, column] = row[j * stride_w + shift]
        for j in range(hi, ow):
            out[j, column] = zero


@jit
def _im2col_one_channel(cf, xf, first, last, h_, w_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left):
    """Output rows ``first`` to ``last`` (image n, row i) of a one-channel im2col. Its window rows are a few
    elements long, too short for ``_im2col``'s run copies; taps are copied as columns instead
    (``_one_channel_taps``), with the 3x3, stride-1, pad-1 case compiled with those constants. The quick CNN's
    conv1 im2col (64 x 28 x 28 x 1) took 0.38 ms instead of 0.78 ms copying each window row as a slice, one
    thread, 2-core Intel Xeon VM, 2026-12-06. A call of its own: slices taken inside a prange loop trip Numba's
    parallel array analysis."""
    zero = cf.dtype.type(0.0)
    area = kh * kw
    for r in range(first, last):
        n = r // oh
        i = r - n * oh
        out = cf[r * ow * area:(r + 1) * ow * area].reshape((ow, area))
        for p in range(kh):
            hh = i * stride_h + p - pad_top
            if hh < 0 or hh >= h_:
                for j in range(ow):
                    for q in range(kw):
                        out[j, p * kw + q] = zero
                continue
            row = xf[(n * h_ + hh) * w_:(n * h_ + hh + 1) * w_]
            if kw == 3 and stride_w == 1 and pad_left == 1:
                _one_channel_taps(out, row, w_, ow, 3, 1, 1, p)
            else:
                _one_channel_taps(out, row, w_, ow, kw, stride_w, pad_left, p)


ONE_CHANNEL_BLOCKS = 64
"""Blocks of output rows a one-channel im2col is split into (each a call of ``_im2col_one_channel``)."""


@jit(inline="always")
def _im2col_run_rows(cf, xf, first, last, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left):
    """Output rows ``first`` to ``last`` (image n, row i) of an im2col of several channels. For each window row
    (n, i, j, p) the valid q form one run of x's row that is contiguous in both arrays, copied as one flat loop of
    (q_hi - q_lo) * C elements; the rest is zeroed. The runs are copied between slices indexed from 0, which
    vectorises (offset indexing ran five times slower)."""
    zero = cf.dtype.type(0.0)
    row = kw * c_
    for r in range(first, last):
        n = r // oh
        i = r - n * oh
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


@jit
def im2col_rows(cf, xf, first, last, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left):
    """Output rows ``first`` to ``last`` (image n, row i: ``r = n * OH + i``) of an im2col from the flat x ``xf``
    (N, H, W, C) into the flat cols ``cf`` (N, OH, OW, KH, KW, C): by runs of channels, or by taps for one
    channel: for the convolution kernels, whose blocks of images each call it once. ``_im2col`` calls the two helpers
    itself, the run copies inlined into its loop over rows (through this call, 3-7% slower on two threads)."""
    if c_ == 1:
        _im2col_one_channel(cf, xf, first, last, h_, w_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)
    else:
        _im2col_run_rows(cf, xf, first, last, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)


def _im2col(cols, x, stride_h, stride_w, pad_top, pad_left):
    """im2col on C-contiguous arrays: each row of windows over threads for several channels
    (``_im2col_run_rows``), ``ONE_CHANNEL_BLOCKS`` blocks of rows for one (``_im2col_one_channel``)."""
    n_, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    rows = n_ * oh
    if c_ == 1:
        blocks = min(rows, ONE_CHANNEL_BLOCKS)
        for b in prange(blocks):
            _im2col_one_channel(cf, xf, b * rows // blocks, (b + 1) * rows // blocks, h_, w_, oh, ow, kh, kw,
                                stride_h, stride_w, pad_top, pad_left)
        return
    for r in prange(rows):
        _im2col_run_rows(cf, xf, r, r + 1, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)


@jit(inline="always")
def col2im_images(cf, xf, first, last, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left):
    """Images ``first`` to ``last`` of a col2im: each image of the flat dx ``xf`` zeroed, then every valid run of
    the flat cols ``cf`` added back (as in ``_im2col_run_rows``). Images own disjoint parts of dx."""
    zero = xf.dtype.type(0.0)
    image = h_ * w_ * c_
    for n in range(first, last):
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


def _col2im(cols, dx, stride_h, stride_w, pad_top, pad_left):
    """col2im on C-contiguous arrays, parallel over images (``col2im_images``)."""
    n_, h_, w_, c_ = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf = dx.reshape(-1)
    cf = cols.reshape(-1)
    for n in prange(n_):
        col2im_images(cf, xf, n, n + 1, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)


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
