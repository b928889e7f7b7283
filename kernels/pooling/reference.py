"""Reference pooling of NHWC batches (windows without padding, or whole images): the definitions of the fused
versions."""

from __future__ import annotations

from .. import array_module
from ..activations.reference import bias_activation
from ..registry import kernel
from ..windows import window_slices
from . import (
    check_avg_pool,
    check_avg_pool_backward,
    check_global_avg_pool,
    check_global_avg_pool_backward,
    check_max_pool,
    check_max_pool_activation,
    check_max_pool_activation_backward,
    check_max_pool_backward,
)


@kernel(check=check_max_pool)
def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out[n, i, j, c] = the largest x in window (i, j) of channel c; argmax = its p * pool_w + q (the first
    one on ties; NaN is not special: an element wins only if it is greater than the best before it)."""
    xp = array_module(x)
    _, oh, ow, _ = out.shape
    best = x[window_slices(0, 0, oh, ow, stride_h, stride_w)].copy()
    where = xp.zeros(out.shape, dtype=xp.int32)
    for p in range(pool_h):
        for q in range(pool_w):
            if p == q == 0:
                continue
            v = x[window_slices(p, q, oh, ow, stride_h, stride_w)]
            better = v > best
            best = xp.where(better, v, best)
            where = xp.where(better, xp.int32(p * pool_w + q), where)
    out[...] = best
    argmax[...] = where


@kernel(check=check_max_pool_backward)
def max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = 0, plus each dout[n, i, j, c] added at the position argmax[n, i, j, c] names in window (i, j)."""
    xp = array_module(dout)
    _, oh, ow, _ = dout.shape
    total = xp.zeros(dx.shape, dtype=dx.dtype)
    for p in range(pool_h):
        for q in range(pool_w):
            total[window_slices(p, q, oh, ow, stride_h, stride_w)] += xp.where(argmax == p * pool_w + q, dout, 0)
    dx[...] = total


@kernel(check=check_max_pool_activation)
def max_pool_activation(x, pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> None:
    """Conv2D's max pool and the bias + activation after it, on side-by-side windows (strides equal to the pool):
    z = each window's max (``max_pool``, argmax with it) + b per channel; a = f(z); d = f'(z) unless d is None."""
    max_pool(x, pool_h, pool_w, pool_h, pool_w, z, argmax)
    channels = z.shape[-1]
    bias_activation(z.reshape(-1, channels), b, activation, alpha, a.reshape(-1, channels),
                    None if d is None else d.reshape(-1, channels))


@kernel(check=check_max_pool_activation_backward)
def max_pool_activation_backward(da, d, argmax, pool_h: int, pool_w: int, dx, db) -> None:
    """The backward of ``max_pool_activation``: dz = da * d (pooled); dx = dz at each window's argmax position
    and 0 elsewhere; db = the channels' sums of dz. da is left as it was."""
    dz = da * d
    db[...] = dz.reshape(-1, dz.shape[-1]).sum(axis=0)
    max_pool_backward(dz, argmax, pool_h, pool_w, pool_h, pool_w, dx)


@kernel(check=check_avg_pool)
def avg_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out) -> None:
    """out[n, i, j, c] = the mean of x over window (i, j) of channel c (the window's sum times 1 / its area)."""
    _, oh, ow, _ = out.shape
    total = x[window_slices(0, 0, oh, ow, stride_h, stride_w)].copy()
    for p in range(pool_h):
        for q in range(pool_w):
            if p or q:
                total += x[window_slices(p, q, oh, ow, stride_h, stride_w)]
    out[...] = total * x.dtype.type(1.0 / (pool_h * pool_w))


@kernel(check=check_avg_pool_backward)
def avg_pool_backward(dout, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = the sum, over every window that holds an element, of that window's dout / its area."""
    xp = array_module(dout)
    _, oh, ow, _ = dout.shape
    total = xp.zeros(dx.shape, dtype=dx.dtype)
    for p in range(pool_h):
        for q in range(pool_w):
            total[window_slices(p, q, oh, ow, stride_h, stride_w)] += dout
    dx[...] = total * dx.dtype.type(1.0 / (pool_h * pool_w))


@kernel(check=check_global_avg_pool)
def global_avg_pool(x, out) -> None:
    """out[n, c] = the mean of image n's channel c: x (N, H, W, C), out (N, C)."""
    out[...] = x.sum(axis=(1, 2)) * x.dtype.type(1.0 / (x.shape[1] * x.shape[2]))


@kernel(check=check_global_avg_pool_backward)
def global_avg_pool_backward(dout, dx) -> None:
    """dx[n, h, w, c] = dout[n, c] / (H * W): every pixel had an equal share in its channel's mean."""
    dx[...] = (dout * dout.dtype.type(1.0 / (dx.shape[1] * dx.shape[2])))[:, None, None, :]
