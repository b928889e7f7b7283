"""Numba CPU pooling: per window (or image), loops over flat channel slices (which vectorise)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ..activations.cpu import bias_activation_rows
from ..numba_cpu import (
    BLOCK_ROWS,
    add_partials,
    block_partials,
    contiguous_output,
    contiguous_outputs,
    jit,
    serial_and_parallel,
    write_back,
    write_back_all,
)


@jit(inline="always")
def _max_pool_row(of, af, xf, r, out_shape, in_shape, pool_h, pool_w, stride_h, stride_w):
    """Output row r (image r // OH's row r % OH) of the flat pooled output ``of`` and its argmax ``af``: per window,
    the channels' running max and argmax as selects over flat slices indexed from 0, which vectorise (a branch per
    channel, or 4-D indexing, ran 2.5x slower)."""
    _, oh, ow, c_ = out_shape
    _, h_, w_, _ = in_shape
    n = r // oh
    h0 = (r - n * oh) * stride_h
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


def _max_pool(out, argmax, x, pool_h, pool_w, stride_h, stride_w):
    """Each output row's windows (``_max_pool_row``), rows over threads."""
    of, af, xf = out.reshape(-1), argmax.reshape(-1), x.reshape(-1)
    for r in prange(out.shape[0] * out.shape[1]):
        _max_pool_row(of, af, xf, r, out.shape, x.shape, pool_h, pool_w, stride_h, stride_w)


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
# The fused pool + activation's, by the same command with `--only pooling.max_pool_activation
# pooling.max_pool_activation_backward pooling.max_pool pooling.max_pool_backward` on the 2-core Intel Xeon VM,
# 2026-12-06 08:13 (load average 0.9): the same sizes as the plain pool's, which came out unchanged.
MAX_POOL_ACTIVATION_PARALLEL_MIN = 9_408
MAX_POOL_ACTIVATION_BACKWARD_PARALLEL_MIN = 31_360

_max_pool_kernel = serial_and_parallel(_max_pool, MAX_POOL_PARALLEL_MIN)


_max_pool_backward_kernel = serial_and_parallel(_max_pool_backward, MAX_POOL_BACKWARD_PARALLEL_MIN)


def require_int32(kernel: str, argmax) -> None:
    """Refuse an argmax array that is not int32 (the kernels write window positions as int32)."""
    if argmax.dtype != np.int32:
        raise TypeError(f"{kernel}: argmax must be int32, not {argmax.dtype}")


def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out = the max of each pool_h x pool_w window (no padding); argmax (int32) = its p * pool_w + q, the
    first on ties."""
    require_int32("max_pool", argmax)
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


POOLED_ROW_BLOCK = 16
"""Rows of pooled windows per block of ``_max_pool_activation`` (a row: one image's windows side by side)."""


@jit
def max_pool_activation_rows(z, a, d, argmax, x, b, activation, alpha, pool_h, pool_w, lo, hi):
    """Rows lo..hi of pooled windows: each window's max and argmax (``_max_pool_row``), then the rows' windows,
    still in cache, get the bias and activation as ``bias_activation``'s blocks (the same code: the same values)."""
    zf, wf, xf = z.reshape(-1), argmax.reshape(-1), x.reshape(-1)
    for r in range(lo, hi):
        _max_pool_row(zf, wf, xf, r, z.shape, x.shape, pool_h, pool_w, pool_h, pool_w)
    windows = (-1, z.shape[3])
    bias_activation_rows(z.reshape(windows), b, activation, alpha, a.reshape(windows),
                         None if d is None else d.reshape(windows), lo * z.shape[2], hi * z.shape[2])


def _max_pool_activation(z, a, d, argmax, x, b, activation, alpha, pool_h, pool_w):
    """``max_pool`` and ``bias_activation`` in one pass, by blocks of ``POOLED_ROW_BLOCK`` rows of windows."""
    rows = z.shape[0] * z.shape[1]
    for k in prange((rows + POOLED_ROW_BLOCK - 1) // POOLED_ROW_BLOCK):
        max_pool_activation_rows(z, a, d, argmax, x, b, activation, alpha, pool_h, pool_w, k * POOLED_ROW_BLOCK,
                                  min((k + 1) * POOLED_ROW_BLOCK, rows))


@jit
def unpool_derivative_rows(dx, da, d, argmax, pool_h, pool_w, acc, lo, hi):
    """Windows lo..hi (in order: window r is image r // (OH * OW)'s (r // OW) % OH, r % OW): dz = da * d is
    written at each channel's argmax position and 0 at the window's others, and added to ``acc`` (window by window,
    the order of ``activations.cpu._derivative_rows``, so db comes out the same)."""
    _, oh, ow, c_ = da.shape
    _, h_, w_, _ = dx.shape
    zero = dx.dtype.type(0.0)
    xf, gf, df, wf = dx.reshape(-1), da.reshape(-1), d.reshape(-1), argmax.reshape(-1)
    for c in range(c_):
        acc[c] = zero
    for r in range(lo, hi):
        n = r // (oh * ow)
        i = (r // ow) % oh
        j = r % ow
        o = r * c_
        g = gf[o:o + c_]
        slope = df[o:o + c_]
        where = wf[o:o + c_]
        for c in range(c_):
            acc[c] += g[c] * slope[c]
        for p in range(pool_h):
            for q in range(pool_w):
                k = p * pool_w + q
                s = ((n * h_ + i * pool_h + p) * w_ + j * pool_w + q) * c_
                target = xf[s:s + c_]
                for c in range(c_):
                    target[c] = g[c] * slope[c] if where[c] == k else zero


@jit
def zero_margin(image, covered_h, covered_w):
    """Zero the rows and columns of one (H, W, C) image that no window covers."""
    h_, w_, _ = image.shape
    zero = image.dtype.type(0.0)
    for hh in range(h_):
        for ww in range(covered_w if hh < covered_h else 0, w_):
            image[hh, ww, :] = zero


def _max_pool_activation_backward(dx, da, d, argmax, pool_h, pool_w, db, partial):
    """The windows in blocks of ``BLOCK_ROWS``, each summing its dz into its own row of ``partial``, added up in
    order at the end (db does not depend on the thread count); the margin no window covers is zeroed first."""
    n_, oh, ow, _ = da.shape
    if dx.shape[1] > oh * pool_h or dx.shape[2] > ow * pool_w:
        for n in prange(n_):
            zero_margin(dx[n], oh * pool_h, ow * pool_w)
    windows = n_ * oh * ow
    chunks = partial.shape[0]
    for k in prange(chunks):
        unpool_derivative_rows(dx, da, d, argmax, pool_h, pool_w, partial[k], k * BLOCK_ROWS,
                                min((k + 1) * BLOCK_ROWS, windows))
    add_partials(partial, db)


_max_pool_activation_kernel = serial_and_parallel(_max_pool_activation, MAX_POOL_ACTIVATION_PARALLEL_MIN)
_max_pool_activation_backward_kernel = serial_and_parallel(_max_pool_activation_backward,
                                                           MAX_POOL_ACTIVATION_BACKWARD_PARALLEL_MIN)


def max_pool_activation(x, pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> None:
    """z = each side-by-side window's max + b; a = f(z); d = f'(z) unless d is None; argmax as ``max_pool``'s."""
    require_int32("max_pool_activation", argmax)
    results = contiguous_outputs(z, a, d, argmax)
    _max_pool_activation_kernel(*results, np.ascontiguousarray(x), np.ascontiguousarray(b), activation, alpha,
                                pool_h, pool_w)
    write_back_all((z, a, d, argmax), results)


def max_pool_activation_backward(da, d, argmax, pool_h: int, pool_w: int, dx, db) -> None:
    """dz = da * d; dx = dz at each window's argmax position, 0 elsewhere; db = the channels' sums of dz."""
    require_int32("max_pool_activation_backward", argmax)
    partial = block_partials(da.size // da.shape[-1], db)
    result = contiguous_output(dx)
    _max_pool_activation_backward_kernel(result, np.ascontiguousarray(da), np.ascontiguousarray(d),
                                         np.ascontiguousarray(argmax), pool_h, pool_w, db, partial)
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
