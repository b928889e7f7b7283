"""Plain array-module reference implementations of every fused kernel.

These run on NumPy or CuPy alike (the module is taken from the array's type) and define what the fused kernels
must compute. They favour clarity over speed; tests hold the fused kernels equal to them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import (
    IDENTITY,
    LEAKY_RELU,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
    check_activation,
    check_pool,
    check_rate,
    check_shift,
    check_windows,
)
from .scalar import dropout_constants, dropout_draw, random_shifts


def array_module(x) -> ModuleType:
    """The array module (numpy or cupy) that owns ``x``, found without importing cupy here."""
    return importlib.import_module(type(x).__module__.split(".")[0])


def _sigmoid(xp: ModuleType, z):
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    xp = array_module(z)
    z += b
    if activation == IDENTITY:
        a[...] = z
        grad = xp.ones_like(z)
    elif activation == SIGMOID:
        a[...] = _sigmoid(xp, z)
        grad = a * (1 - a)
    elif activation == TANH:
        a[...] = xp.tanh(z)
        grad = 1 - a * a
    elif activation == RELU:
        a[...] = xp.maximum(z, 0)
        grad = (z > 0).astype(z.dtype)
    elif activation == LEAKY_RELU:
        a[...] = xp.where(z > 0, z, alpha * z)
        grad = xp.where(z > 0, 1, alpha).astype(z.dtype)
    elif activation == SOFTMAX:
        e = xp.exp(z - z.max(axis=1, keepdims=True))
        a[...] = e / e.sum(axis=1, keepdims=True)
        return
    else:
        raise ValueError(f"unknown activation code {activation}")
    if d is not None:
        d[...] = grad


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    check_activation(activation)
    if activation == SOFTMAX:
        dz[...] = a * (da - (da * a).sum(axis=1, keepdims=True))
    else:
        dz[...] = da * d
    db[...] = dz.sum(axis=0)


def _correct(xp: ModuleType, a, y):
    """Per-sample correctness: threshold 0.5 for one output, else argmax agreement."""
    if a.shape[1] == 1:
        return ((a[:, 0] >= 0.5) == (y[:, 0] >= 0.5)).sum()
    return (a.argmax(axis=1) == y.argmax(axis=1)).sum()


def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    xp = array_module(z)
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    dz[...] = (a - y) / n
    stats[0] += -(y * log_probs).sum()
    stats[1] += _correct(xp, a, y)


def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    xp = array_module(z)
    n, m = z.shape
    dz[...] = (a - y) / (n * m)
    per_element = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    stats[0] += per_element.sum() / m
    stats[1] += _correct(xp, a, y)


def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    xp = array_module(a)
    diff = a - y
    da[...] = grad_scale * diff
    stats[0] += loss_scale * (diff * diff).sum()
    stats[1] += _correct(xp, a, y)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    p -= lr * g


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    v *= mu
    v += g
    p -= lr * v


def adam_update(p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float) -> None:
    """Adam: m, v moments; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).

    ``step_size = lr / (1 - beta1**t)`` and ``bc2_sqrt = sqrt(1 - beta2**t)``, computed once per step by the caller,
    which makes this identical to PyTorch's Adam.
    """
    xp = array_module(p)
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    p -= step_size * m / (xp.sqrt(v) / bc2_sqrt + eps)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    array_module(src).take(src, idx, axis=0, out=out)


def _padded_extent(size: int, out: int, kernel: int, stride: int, pad: int) -> int:
    """Rows (or columns) of a zero-padded input that ``out`` windows of ``kernel`` at ``stride`` can reach."""
    return max(size + pad, (out - 1) * stride + kernel) if out > 0 else size + pad


def _window_slices(p: int, q: int, oh: int, ow: int, stride_h: int, stride_w: int) -> tuple:
    """The positions of window element (p, q) in every output window, as slices of the padded input."""
    return (slice(None), slice(p, p + (oh - 1) * stride_h + 1, stride_h),
            slice(q, q + (ow - 1) * stride_w + 1, stride_w), slice(None))


def im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """cols[n, i, j, p, q, c] = x[n, i*stride_h + p - pad_top, j*stride_w + q - pad_left, c], zero outside x.

    x is (N, H, W, C), cols (N, OH, OW, KH, KW, C): the window size and the output size come from cols' shape,
    and the bottom/right zero padding is whatever OH and OW imply.
    """
    check_windows(x.shape, cols.shape, stride_h, stride_w)
    xp = array_module(x)
    n, h, w, c = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    padded = xp.zeros((n, _padded_extent(h, oh, kh, stride_h, pad_top),
                       _padded_extent(w, ow, kw, stride_w, pad_left), c), dtype=x.dtype)
    padded[:, pad_top:pad_top + h, pad_left:pad_left + w, :] = x
    for p in range(kh):
        for q in range(kw):
            cols[:, :, :, p, q, :] = padded[_window_slices(p, q, oh, ow, stride_h, stride_w)]


def col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """The adjoint of ``im2col``: dx (N, H, W, C) = the sum of every cols entry that im2col reads from it."""
    check_windows(dx.shape, cols.shape, stride_h, stride_w)
    xp = array_module(cols)
    n, h, w, c = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    padded = xp.zeros((n, _padded_extent(h, oh, kh, stride_h, pad_top),
                       _padded_extent(w, ow, kw, stride_w, pad_left), c), dtype=dx.dtype)
    for p in range(kh):
        for q in range(kw):
            padded[_window_slices(p, q, oh, ow, stride_h, stride_w)] += cols[:, :, :, p, q, :]
    dx[...] = padded[:, pad_top:pad_top + h, pad_left:pad_left + w, :]


def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out[n, i, j, c] = the largest x in window (i, j) of channel c; argmax = its p * pool_w + q (the first
    one on ties; NaN is not special: an element wins only if it is greater than the best before it)."""
    check_pool(x.shape, out.shape, pool_h, pool_w, stride_h, stride_w)
    xp = array_module(x)
    _, oh, ow, _ = out.shape
    best = x[_window_slices(0, 0, oh, ow, stride_h, stride_w)].copy()
    where = xp.zeros(out.shape, dtype=xp.int32)
    for p in range(pool_h):
        for q in range(pool_w):
            if p == q == 0:
                continue
            v = x[_window_slices(p, q, oh, ow, stride_h, stride_w)]
            better = v > best
            best = xp.where(better, v, best)
            where = xp.where(better, xp.int32(p * pool_w + q), where)
    out[...] = best
    argmax[...] = where


def max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = 0, plus each dout[n, i, j, c] added at the position argmax[n, i, j, c] names in window (i, j)."""
    check_pool(dx.shape, dout.shape, pool_h, pool_w, stride_h, stride_w)
    xp = array_module(dout)
    _, oh, ow, _ = dout.shape
    total = xp.zeros(dx.shape, dtype=dx.dtype)
    for p in range(pool_h):
        for q in range(pool_w):
            total[_window_slices(p, q, oh, ow, stride_h, stride_w)] += xp.where(argmax == p * pool_w + q, dout, 0)
    dx[...] = total


def dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """mask = 1 / (1 - rate) where u >= rate, else 0; out = x * mask. u in [0, 1) is a hash of (seed, step, the
    element's flat C-order index): see ``scalar.dropout_draw``; the same (seed, step) give the same mask."""
    check_rate(rate)
    xp = array_module(x)
    key, threshold, scale = dropout_constants(seed, step, rate, x.dtype)
    index = xp.arange(x.size, dtype=xp.uint64).reshape(x.shape)
    kept = dropout_draw(key, index) >= threshold
    m = xp.where(kept, scale, x.dtype.type(0))
    out[...] = x * m
    mask[...] = m


def dropout_backward(dout, mask, dx) -> None:
    """dx = dout * mask (dx may be dout)."""
    dx[...] = dout * mask


def _translate(x, down, right, out) -> None:
    """out[n, i, j] = x[n, i - down[n], j - right[n]], zero where that falls outside x (down, right: host int64)."""
    xp = array_module(x)
    n, h, w, _ = x.shape
    rows = xp.arange(h)[None, :] - xp.asarray(down)[:, None]  # (N, H): the source row of every output row
    cols = xp.arange(w)[None, :] - xp.asarray(right)[:, None]  # (N, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    source = x[xp.arange(n)[:, None, None], xp.clip(rows, 0, h - 1)[:, :, None], xp.clip(cols, 0, w - 1)[:, None, :]]
    out[...] = xp.where(inside[..., None], source, x.dtype.type(0))


def _shift(x, max_h: int, max_w: int, seed: int, step: int, out, sign: int) -> None:
    """Both directions: ``sign`` 1 translates every image by its shift, -1 back by it (the adjoint)."""
    check_shift(x, out, max_h, max_w)
    down, right = random_shifts(seed, step, x.shape[0], max_h, max_w)
    _translate(x, sign * down, sign * right, out)


def random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """out = every image of x (N, H, W, C) translated by its own (down, right) shift, uniform in [-max_h, max_h] x
    [-max_w, max_w] and hashed from (seed, step, image index) (see ``scalar.random_shifts``): out[n, i, j] =
    x[n, i - down, j - right], zero where that falls outside x. The same (seed, step) give the same shifts."""
    _shift(x, max_h, max_w, seed, step, out, 1)


def random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """The adjoint of ``random_shift`` with the same (seed, step): every image translated back by (-down,
    -right), zero where that falls outside."""
    _shift(dout, max_h, max_w, seed, step, dx, -1)


def batch_norm_train(x, gamma, beta, eps: float, momentum: float, running_mean, running_var, y, xhat,
                     inv_std) -> None:
    """Batch normalisation of x (M, C) by its column statistics (mean, biased variance, summed in float64).

    inv_std = 1 / sqrt(var + eps); xhat = (x - mean) * inv_std; y = gamma * xhat + beta; and, the Keras way,
    running_mean = momentum * running_mean + (1 - momentum) * mean, running_var likewise with var.
    """
    xp = array_module(x)
    mean = x.mean(axis=0, dtype=xp.float64)
    centred = x.astype(xp.float64) - mean
    var = (centred * centred).mean(axis=0)
    inv = 1 / xp.sqrt(var + eps)
    t = x.dtype.type
    xhat[...] = (x - mean.astype(x.dtype)) * inv.astype(x.dtype)
    y[...] = gamma * xhat + beta
    inv_std[...] = inv
    running_mean *= t(momentum)
    running_mean += t(1 - momentum) * mean.astype(x.dtype)
    running_var *= t(momentum)
    running_var += t(1 - momentum) * var.astype(x.dtype)


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps: float, y) -> None:
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, for x (M, C)."""
    xp = array_module(x)
    y[...] = gamma * (x - running_mean) / xp.sqrt(running_var + x.dtype.type(eps)) + beta


def batch_norm_backward(dy, xhat, gamma, inv_std, dx, dgamma, dbeta) -> None:
    """dbeta = column sums of dy, dgamma = column sums of dy * xhat (both summed in float64);
    dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma), for (M, C) matrices; dx may be dy."""
    xp = array_module(dy)
    m = dy.shape[0]
    t = dy.dtype.type
    db = dy.sum(axis=0, dtype=xp.float64).astype(dy.dtype)
    dg = (dy.astype(xp.float64) * xhat).sum(axis=0).astype(dy.dtype)
    dx[...] = gamma * inv_std / t(m) * (t(m) * dy - db - xhat * dg)
    dbeta[...] = db
    dgamma[...] = dg
