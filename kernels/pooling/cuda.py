"""Numba CUDA pooling: one thread per written element; backward passes gather from the windows that reach it."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import boolean, cuda, int32, int64, void

from ..activations.cuda import activate_on_device, launch_column_sums
from ..numba_cuda import array, cuda_kernel, require


@cuda.jit(device=True)
def _nhwc(k, h_, w_, c_):
    """Flat C-order index ``k`` of an (N, h_, w_, c_) array as (n, h, w, c)."""
    c = k % c_
    r = k // c_
    w = r % w_
    r //= w_
    return r // h_, r % h_, w, c


@cuda.jit(device=True)
def _windows_holding(h, pool, stride, out_size):
    """The first and one-past-last window index (along one axis) whose window holds input position ``h`` (if/else,
    not min/max: Numba's CUDA max(int, int) fails to compile)."""
    first = (h - pool + stride) // stride if h >= pool else 0
    end = h // stride + 1
    if end > out_size:
        end = out_size
    return first, end


@cuda.jit(device=True)
def _window_max(x, n, h0, w0, c, pool_h, pool_w):
    """The first maximum of channel c's window from (h0, w0), and its p * pool_w + q."""
    best = x[n, h0, w0, c]
    where = 0
    for p in range(pool_h):
        for q in range(pool_w):
            v = x[n, h0 + p, w0 + q, c]
            if v > best:
                best = v
                where = p * pool_w + q
    return best, where


@cuda_kernel(lambda t: void(array(t, 4), array(t, 4), array(int32, 4), int64, int64, int64, int64))
def _max_pool(x, out, argmax, pool_h, pool_w, stride_h, stride_w):
    """One thread per output element: the window's first maximum and its p * pool_w + q."""
    _, oh, ow, c_ = out.shape
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, i, j, c = _nhwc(k, oh, ow, c_)
        out[n, i, j, c], argmax[n, i, j, c] = _window_max(x, n, i * stride_h, j * stride_w, c, pool_h, pool_w)


@cuda_kernel(lambda t: void(array(t, 4), array(t, 4), array(int32, 4), int64, int64, int64, int64))
def _max_pool_backward(dout, dx, argmax, pool_h, pool_w, stride_h, stride_w):
    """One thread per dx element, summing the dout of every window whose argmax names it (no races)."""
    _, h_, w_, c_ = dx.shape
    _, oh, ow, _ = dout.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, h, w, c = _nhwc(k, h_, w_, c_)
        s = dx.dtype.type(0.0)
        i_first, i_end = _windows_holding(h, pool_h, stride_h, oh)
        j_first, j_end = _windows_holding(w, pool_w, stride_w, ow)
        for i in range(i_first, i_end):
            p = h - i * stride_h
            for j in range(j_first, j_end):
                if argmax[n, i, j, c] == p * pool_w + w - j * stride_w:
                    s += dout[n, i, j, c]
        dx[n, h, w, c] = s


@cuda_kernel(lambda t: void(array(t, 4), array(t, 1), array(t, 4), array(t, 4), array(t, 4), array(int32, 4), int32,
                            t, int64, int64, boolean))
def _max_pool_activation(x, b, z, d, a, argmax, activation, alpha, pool_h, pool_w, write_d):
    """One thread per window (side by side): its first maximum and argmax (``_window_max``), then z = max + b,
    a = f(z) and d = f'(z) when write_d (else d is a stand-in, untouched)."""
    _, oh, ow, c_ = z.shape
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    for k in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        n, i, j, c = _nhwc(k, oh, ow, c_)
        best, where = _window_max(x, n, i * pool_h, j * pool_w, c, pool_h, pool_w)
        v = best + b[c]
        z[n, i, j, c] = v
        f, df = activate_on_device(activation, v, alpha, one, zero)
        a[n, i, j, c] = f
        if write_d:
            d[n, i, j, c] = df
        argmax[n, i, j, c] = where


@cuda_kernel(lambda t: void(array(t, 4), array(t, 4), array(t, 4), array(int32, 4), int64, int64))
def _unpool_derivative(da, d, dx, argmax, pool_h, pool_w):
    """One thread per dx element: da * d of the window holding it where that window's argmax names it, else 0
    (windows side by side: at most one holds it)."""
    _, h_, w_, c_ = dx.shape
    _, oh, ow, _ = da.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, h, w, c = _nhwc(k, h_, w_, c_)
        i = h // pool_h
        j = w // pool_w
        g = dx.dtype.type(0.0)
        if i < oh and j < ow and argmax[n, i, j, c] == (h - i * pool_h) * pool_w + w - j * pool_w:
            g = da[n, i, j, c] * d[n, i, j, c]
        dx[n, h, w, c] = g


@cuda_kernel(lambda t: void(array(t, 4), array(t, 4), int64, int64, int64, int64, t))
def _avg_pool(x, out, pool_h, pool_w, stride_h, stride_w, scale):
    """One thread per output element: the window's sum times ``scale`` (1 / the window's area)."""
    _, oh, ow, c_ = out.shape
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, i, j, c = _nhwc(k, oh, ow, c_)
        h0 = i * stride_h
        w0 = j * stride_w
        s = out.dtype.type(0.0)
        for p in range(pool_h):
            for q in range(pool_w):
                s += x[n, h0 + p, w0 + q, c]
        out[n, i, j, c] = s * scale


@cuda_kernel(lambda t: void(array(t, 4), array(t, 4), int64, int64, int64, int64, t))
def _avg_pool_backward(dout, dx, pool_h, pool_w, stride_h, stride_w, scale):
    """One thread per dx element, summing the dout of every window that holds it (no races), times ``scale``."""
    _, h_, w_, c_ = dx.shape
    _, oh, ow, _ = dout.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, h, w, c = _nhwc(k, h_, w_, c_)
        s = dx.dtype.type(0.0)
        i_first, i_end = _windows_holding(h, pool_h, stride_h, oh)
        j_first, j_end = _windows_holding(w, pool_w, stride_w, ow)
        for i in range(i_first, i_end):
            for j in range(j_first, j_end):
                s += dout[n, i, j, c]
        dx[n, h, w, c] = s * scale


@cuda_kernel(lambda t: void(array(t, 4), array(t, 2), t))
def _global_avg_pool(x, out, scale):
    """One thread per (image, channel): the sum over the image's pixels times ``scale`` (1 / H * W)."""
    _, h_, w_, c_ = x.shape
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n = k // c_
        c = k - n * c_
        s = out.dtype.type(0.0)
        for h in range(h_):
            for w in range(w_):
                s += x[n, h, w, c]
        out[n, c] = s * scale


@cuda_kernel(lambda t: void(array(t, 2), array(t, 4), t))
def _global_avg_pool_backward(dout, dx, scale):
    """One thread per dx element: its channel's dout times ``scale`` (1 / H * W)."""
    _, h_, w_, c_ = dx.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, h, w, c = _nhwc(k, h_, w_, c_)
        dx[n, h, w, c] = dout[n, c] * scale

def _require_int32(name: str, argmax: Any) -> None:
    require(name, "argmax", argmax, np.int32)


def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out = the max of each pool_h x pool_w window (no padding); argmax (int32) = its p * pool_w + q, the
    first on ties."""
    _require_int32("max_pool", argmax)
    _max_pool.launch(out.size, (x, out), (pool_h, pool_w, stride_h, stride_w), argmax)


def max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = 0, plus each dout added at the position its argmax names (overlapping windows accumulate)."""
    _require_int32("max_pool_backward", argmax)
    _max_pool_backward.launch(dx.size, (dout, dx), (pool_h, pool_w, stride_h, stride_w), argmax)


def max_pool_activation(x, pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> None:
    """z = each side-by-side window's max + b; a = f(z); d = f'(z) unless d is None; argmax as ``max_pool``'s."""
    _require_int32("max_pool_activation", argmax)
    # Without d, a stands in for it; it comes after d so that, for host arrays, its copy-back wins.
    stand_in = a if d is None else d
    _max_pool_activation.launch(z.size, (x, b, z, stand_in, a), (activation, alpha, pool_h, pool_w, d is not None),
                                argmax)


def max_pool_activation_backward(da, d, argmax, pool_h: int, pool_w: int, dx, db) -> None:
    """dz = da * d; dx = dz at each window's argmax position, 0 elsewhere; db = the channels' sums of dz: the
    column sums of the activations' backward (dz not written), then one thread per dx element."""
    _require_int32("max_pool_activation_backward", argmax)
    rows = da.reshape(-1, da.shape[-1])
    launch_column_sums(rows, d.reshape(rows.shape), rows, db, True, write=False)
    _unpool_derivative.launch(dx.size, (da, d, dx), (pool_h, pool_w), argmax)


def avg_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out) -> None:
    """out = the mean of each pool_h x pool_w window (no padding)."""
    _avg_pool.launch(out.size, (x, out), (pool_h, pool_w, stride_h, stride_w, 1.0 / (pool_h * pool_w)))


def avg_pool_backward(dout, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = the sum of dout / area over the windows that hold each element (overlapping windows accumulate)."""
    _avg_pool_backward.launch(dx.size, (dout, dx), (pool_h, pool_w, stride_h, stride_w, 1.0 / (pool_h * pool_w)))


def global_avg_pool(x, out) -> None:
    """out (N, C) = the mean of every channel of every image of x (N, H, W, C)."""
    _global_avg_pool.launch(out.size, (x, out), (1.0 / (x.shape[1] * x.shape[2]),))


def global_avg_pool_backward(dout, dx) -> None:
    """dx (N, H, W, C) = dout (N, C) / (H * W) at every pixel."""
    _global_avg_pool_backward.launch(dx.size, (dout, dx), (1.0 / (dx.shape[1] * dx.shape[2]),))
