"""Numba CPU pooling: per window (or image), loops over flat channel slices (which vectorise)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ..numba_cpu import contiguous_output, serial_and_parallel, write_back


def _max_pool(out, argmax, x, pool_h, pool_w, stride_h, stride_w):
    """Per window, the channels' running max and argmax as selects over flat slices indexed from 0, which
    vectorise (a branch per channel, or 4-D indexing, ran 2.5x slower)."""
    n_, oh, ow, c_ = out.shape
    _, h_, w_, _ = x.shape
    xf = x.reshape(-1)
    of = out.reshape(-1)
    af = argmax.reshape(-1)
    for r in prange(n_ * oh):
        n = r // oh
        i = r - n * oh
        h0 = i * stride_h
        for j in range(ow):
            w0 = j * stride_w
            o = (r * ow + j) * c_
            best = of[o:o + c_]
            where = af[o:o + c_]
            s = ((n * h_ + h0) * w_ + w0) * c_
            first = xf[s:s + c_]
            for c in range(c_):
                best[c] = first[c]
                where[c] = 0
            for p in range(pool_h):
                for q in range(pool_w):
                    if p == 0 and q == 0:
                        continue
                    s = ((n * h_ + h0 + p) * w_ + w0 + q) * c_
                    v = xf[s:s + c_]
                    k = np.int32(p * pool_w + q)
                    for c in range(c_):
                        bigger = v[c] > best[c]
                        best[c] = v[c] if bigger else best[c]
                        where[c] = k if bigger else where[c]


def _max_pool_backward(dx, dout, argmax, pool_h, pool_w, stride_h, stride_w):
    """Each window gives every position in it its dout where the argmax names that position, else zero, as a
    select over flat channel slices (which vectorises). When the windows tile dx (strides equal to the pool), each
    covered element is written once and only the margin outside every window is zeroed; otherwise (overlapping or
    gapped windows) dx is zeroed and the windows add. Parallel over images, which own disjoint parts of dx."""
    n_, oh, ow, c_ = dout.shape
    _, h_, w_, _ = dx.shape
    zero = dx.dtype.type(0.0)
    tiles = stride_h == pool_h and stride_w == pool_w
    xf = dx.reshape(-1)
    df = dout.reshape(-1)
    af = argmax.reshape(-1)
    for n in prange(n_):
        for hh in range(h_):
            for ww in range(w_):
                if not tiles or hh >= oh * pool_h or ww >= ow * pool_w:
                    s = ((n * h_ + hh) * w_ + ww) * c_
                    margin = xf[s:s + c_]
                    for c in range(c_):
                        margin[c] = zero
        for i in range(oh):
            for j in range(ow):
                o = ((n * oh + i) * ow + j) * c_
                d = df[o:o + c_]
                a = af[o:o + c_]
                for p in range(pool_h):
                    for q in range(pool_w):
                        k = p * pool_w + q
                        s = ((n * h_ + i * stride_h + p) * w_ + j * stride_w + q) * c_
                        target = xf[s:s + c_]
                        if tiles:
                            for c in range(c_):
                                target[c] = d[c] if a[c] == k else zero
                        else:
                            for c in range(c_):
                                target[c] += d[c] if a[c] == k else zero


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
MAX_POOL_PARALLEL_MIN = 9_408
MAX_POOL_BACKWARD_PARALLEL_MIN = 31_360
AVG_POOL_PARALLEL_MIN = 3_136
AVG_POOL_BACKWARD_PARALLEL_MIN = 31_360
GLOBAL_AVG_POOL_PARALLEL_MIN = 100_352
GLOBAL_AVG_POOL_BACKWARD_PARALLEL_MIN = 100_352

_max_pool_kernel = serial_and_parallel(_max_pool, MAX_POOL_PARALLEL_MIN)


_max_pool_backward_kernel = serial_and_parallel(_max_pool_backward, MAX_POOL_BACKWARD_PARALLEL_MIN)


def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out = the max of each pool_h x pool_w window (no padding); argmax (int32) = its p * pool_w + q, the
    first on ties."""
    if argmax.dtype != np.int32:
        raise TypeError(f"max_pool: argmax must be int32, not {argmax.dtype}")
    results = [contiguous_output(out), contiguous_output(argmax)]
    _max_pool_kernel(*results, np.ascontiguousarray(x), pool_h, pool_w, stride_h, stride_w)
    write_back(out, results[0])
    write_back(argmax, results[1])


def max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = 0, plus each dout added at the position its argmax names (overlapping windows accumulate)."""
    result = contiguous_output(dx)
    _max_pool_backward_kernel(result, np.ascontiguousarray(dout), np.ascontiguousarray(argmax), pool_h, pool_w,
                              stride_h, stride_w)
    write_back(dx, result)


def _avg_pool(out, x, pool_h, pool_w, stride_h, stride_w):
    """Per window, the channels' running sums over flat slices indexed from 0 (as in ``_max_pool``), then the
    scale by 1 / the window's area."""
    n_, oh, ow, c_ = out.shape
    _, h_, w_, _ = x.shape
    xf = x.reshape(-1)
    of = out.reshape(-1)
    zero = out.dtype.type(0.0)
    scale = out.dtype.type(1.0 / (pool_h * pool_w))
    for r in prange(n_ * oh):
        n = r // oh
        i = r - n * oh
        h0 = i * stride_h
        for j in range(ow):
            w0 = j * stride_w
            o = (r * ow + j) * c_
            total = of[o:o + c_]
            for c in range(c_):
                total[c] = zero
            for p in range(pool_h):
                for q in range(pool_w):
                    s = ((n * h_ + h0 + p) * w_ + w0 + q) * c_
                    v = xf[s:s + c_]
                    for c in range(c_):
                        total[c] += v[c]
            for c in range(c_):
                total[c] *= scale


def _avg_pool_backward(dx, dout, pool_h, pool_w, stride_h, stride_w):
    """dx zeroed, then each window's dout times 1 / its area added at every position in it, over flat channel
    slices; parallel over images, which own disjoint parts of dx."""
    n_, oh, ow, c_ = dout.shape
    _, h_, w_, _ = dx.shape
    zero = dx.dtype.type(0.0)
    scale = dx.dtype.type(1.0 / (pool_h * pool_w))
    xf = dx.reshape(-1)
    df = dout.reshape(-1)
    image = h_ * w_ * c_
    for n in prange(n_):
        mine = xf[n * image:(n + 1) * image]
        for t in range(image):
            mine[t] = zero
        for i in range(oh):
            for j in range(ow):
                o = ((n * oh + i) * ow + j) * c_
                d = df[o:o + c_]
                for p in range(pool_h):
                    for q in range(pool_w):
                        s = ((i * stride_h + p) * w_ + j * stride_w + q) * c_
                        target = mine[s:s + c_]
                        for c in range(c_):
                            target[c] += d[c] * scale


def _global_avg_pool(x, out):
    """x as (N, H * W, C): each image's pixels summed into its row of out, then scaled by 1 / (H * W)."""
    n_, pixels, c_ = x.shape
    zero = out.dtype.type(0.0)
    scale = out.dtype.type(1.0 / pixels)
    for n in prange(n_):
        total = out[n]
        for c in range(c_):
            total[c] = zero
        for k in range(pixels):
            v = x[n, k]
            for c in range(c_):
                total[c] += v[c]
        for c in range(c_):
            total[c] *= scale


def _global_avg_pool_backward(dx, dout):
    """dx as (N, H * W, C): every pixel gets its channel's dout times 1 / (H * W)."""
    n_, pixels, c_ = dx.shape
    scale = dx.dtype.type(1.0 / pixels)
    for n in prange(n_):
        for k in range(pixels):
            target = dx[n, k]
            for c in range(c_):
                target[c] = dout[n, c] * scale


_avg_pool_kernel = serial_and_parallel(_avg_pool, AVG_POOL_PARALLEL_MIN)
_avg_pool_backward_kernel = serial_and_parallel(_avg_pool_backward, AVG_POOL_BACKWARD_PARALLEL_MIN)
_global_avg_pool_kernel = serial_and_parallel(_global_avg_pool, GLOBAL_AVG_POOL_PARALLEL_MIN)
_global_avg_pool_backward_kernel = serial_and_parallel(_global_avg_pool_backward, GLOBAL_AVG_POOL_BACKWARD_PARALLEL_MIN)


def avg_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out) -> None:
    """out = the mean of each pool_h x pool_w window (no padding)."""
    result = contiguous_output(out)
    _avg_pool_kernel(result, np.ascontiguousarray(x), pool_h, pool_w, stride_h, stride_w)
    write_back(out, result)


def avg_pool_backward(dout, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = the sum of dout / area over the windows that hold each element (overlapping windows accumulate)."""
    result = contiguous_output(dx)
    _avg_pool_backward_kernel(result, np.ascontiguousarray(dout), pool_h, pool_w, stride_h, stride_w)
    write_back(dx, result)


def _pixel_rows(a):
    """An (N, H, W, C) C-contiguous array as (N, H * W, C), a view."""
    return a.reshape(a.shape[0], -1, a.shape[3])


def global_avg_pool(x, out) -> None:
    """out (N, C) = the mean of every channel of every image of x (N, H, W, C)."""
    _global_avg_pool_kernel(_pixel_rows(np.ascontiguousarray(x)), out)


def global_avg_pool_backward(dout, dx) -> None:
    """dx (N, H, W, C) = dout (N, C) / (H * W) at every pixel."""
    result = contiguous_output(dx)
    _global_avg_pool_backward_kernel(_pixel_rows(result), dout)
    write_back(dx, result)
