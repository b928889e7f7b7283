"""Numba CPU kernels: each fuses one elementwise step of training into a single pass over memory.

Each public kernel has the same name, signature and meaning as its twin in ``reference.py``. Kernels over large
arrays exist twice, compiled serial and ``parallel=True`` from one Python function; a size threshold picks one,
because starting Numba's thread pool costs more than it saves on the small arrays of a typical MLP step.
Scalars are cast to the arrays' dtype so float32 work stays in float32.
"""

from __future__ import annotations

import math
import os
import types
from functools import partial

import numba
import numpy as np
from numba import njit, prange

from . import (
    IDENTITY,
    LEAKY_RELU,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
    as_rows,
    check_activation,
    check_pool,
    check_rate,
    check_shift,
    check_windows,
)
from .scalar import (
    activate,
    binary_cross_entropy,
    cross_entropy_row,
    dropout_constants,
    dropout_draw,
    image_shift,
    murmur_finish,
    murmur_round,
    row_correct,
    shift_constants,
    with_helpers,
)

PARALLEL_MIN_SIZE = 1 << 22
"""Arrays with at least this many elements use the parallel variant of a kernel.

Set high on purpose: a training step alternates these kernels with multithreaded BLAS matmuls, and Numba's
thread pool waking while BLAS's threads still spin made a 784-256-128-10 step ten times slower on 2 cores.
Only very large arrays (a wide MLP's Adam update) gain more from threads than they lose to that contention."""

if "NUMBA_THREADING_LAYER" not in os.environ:
    # OpenMP's workers spin after a parallel region and starve the BLAS threads of the matmul that follows
    # (a training step ran 8x slower); the workqueue layer's workers sleep.
    numba.config.THREADING_LAYER = "workqueue"

_jit = partial(njit, cache=True, error_model="numpy")
"""Numba's default Python error model checks every division for zero, which stops the loops vectorising."""

_activate = _jit(inline="always")(activate)
_row_correct = _jit(inline="always")(row_correct)
_binary_cross_entropy = _jit(inline="always")(binary_cross_entropy)
_cross_entropy_row = _jit(inline="always")(cross_entropy_row)
_dropout_draw = _jit(inline="always")(
    with_helpers(
        dropout_draw,
        murmur_round=_jit(inline="always")(murmur_round),
        murmur_finish=_jit(inline="always")(murmur_finish),
    )
)

_image_shift = _jit(inline="always")(with_helpers(image_shift, dropout_draw=_dropout_draw))


def _serial_and_parallel(py_func):
    """Compile ``py_func`` twice (serial, parallel) and return a wrapper that picks one by array size.

    Numba's on-disk cache is keyed by the function's qualified name and signature, not by ``parallel``, so the
    parallel twin is compiled from a renamed copy; otherwise both would load whichever was cached first.
    """
    serial = _jit(py_func)
    twin = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + "_parallel")
    twin.__qualname__ = py_func.__qualname__ + "_parallel"
    parallel = _jit(parallel=True)(twin)

    def by_size(*args):
        return (parallel if args[0].size >= PARALLEL_MIN_SIZE else serial)(*args)

    by_size.__name__ = py_func.__name__
    by_size.__qualname__ = py_func.__qualname__
    by_size.__doc__ = py_func.__doc__
    by_size.serial = serial
    by_size.parallel = parallel
    return by_size


ROW_BLOCK = 256
"""Rows per block of ``_bias_activation``: its parallel variant spreads the blocks over threads, and the activation
is dispatched once per block, outside the element loops."""


@_jit(inline="always")
def _activate_block(kind, z, b, alpha, a, d, one, zero):
    """Bias + activation over a block of rows, inlined with a constant ``kind``: the element loop holds no branch
    on the activation, so it vectorises (one if/elif per row ran six times slower on 16-column rows)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            z[i, j] = v
            f, df = _activate(kind, v, alpha, one, zero)
            a[i, j] = f
            if d is not None:
                d[i, j] = df


@_jit(inline="always")
def _softmax_block(z, b, a, one, zero):
    for i in range(z.shape[0]):
        top = z[i, 0] + b[0]
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            z[i, j] = v
            top = max(top, v)
        total = zero
        for j in range(z.shape[1]):
            e = math.exp(z[i, j] - top)
            a[i, j] = e
            total += e
        inv = one / total
        for j in range(z.shape[1]):
            a[i, j] *= inv


@_jit
def _bias_activation_rows(z, b, activation, alpha, a, d, lo, hi):
    """Rows lo..hi of ``_bias_activation``, as slices indexed from 0 (which vectorise twice as well as rows indexed
    from lo); a call of its own, because slices taken inside a prange loop trip Numba's parallel array analysis."""
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    alpha_t = z.dtype.type(alpha)
    zk, ak = z[lo:hi], a[lo:hi]
    dk = None if d is None else d[lo:hi]
    if activation == SOFTMAX:
        _softmax_block(zk, b, ak, one, zero)
    elif activation == RELU:
        _activate_block(RELU, zk, b, alpha_t, ak, dk, one, zero)
    elif activation == LEAKY_RELU:
        _activate_block(LEAKY_RELU, zk, b, alpha_t, ak, dk, one, zero)
    elif activation == SIGMOID:
        _activate_block(SIGMOID, zk, b, alpha_t, ak, dk, one, zero)
    elif activation == TANH:
        _activate_block(TANH, zk, b, alpha_t, ak, dk, one, zero)
    else:
        _activate_block(IDENTITY, zk, b, alpha_t, ak, dk, one, zero)


def _bias_activation(z, b, activation, alpha, a, d):
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used); by blocks of rows."""
    n = z.shape[0]
    for k in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
        _bias_activation_rows(z, b, activation, alpha, a, d, k * ROW_BLOCK, min((k + 1) * ROW_BLOCK, n))


def _activation_backward(dz, da, d, a, activation, db, partial):
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz. dz comes first (size).

    Rows are split into ``len(partial)`` chunks, each summing its bias gradient into its own row of ``partial``
    (one chunk when serial): rows stay the inner, contiguous, vectorised loop, and the softmax test sits outside
    the row loop.
    """
    n, m = dz.shape
    chunks = partial.shape[0]
    zero = dz.dtype.type(0.0)
    for c in prange(chunks):
        acc = partial[c]
        for j in range(m):
            acc[j] = zero
        lo = c * n // chunks
        hi = (c + 1) * n // chunks
        if activation == SOFTMAX:
            for i in range(lo, hi):
                s = zero
                for j in range(m):
                    s += da[i, j] * a[i, j]
                for j in range(m):
                    g = a[i, j] * (da[i, j] - s)
                    dz[i, j] = g
                    acc[j] += g
        else:
            for i in range(lo, hi):
                for j in range(m):
                    g = da[i, j] * d[i, j]
                    dz[i, j] = g
                    acc[j] += g
    for j in range(m):
        total = zero
        for c in range(chunks):
            total += partial[c, j]
        db[j] = total


_bias_activation_kernel = _serial_and_parallel(_bias_activation)
_activation_backward_kernel = _serial_and_parallel(_activation_backward)


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    check_activation(activation)
    _bias_activation_kernel(z, b, activation, alpha, a, d)


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    check_activation(activation)
    if dz.size >= PARALLEL_MIN_SIZE:
        partial = np.empty((4 * numba.get_num_threads(), dz.shape[1]), dz.dtype)
        _activation_backward_kernel.parallel(dz, da, d, a, activation, db, partial)
    else:
        _activation_backward_kernel.serial(dz, da, d, a, activation, db, db.reshape(1, -1))


@_jit
def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    n, m = z.shape
    inv_n = z.dtype.type(1.0 / n)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) * inv_n
        loss += _cross_entropy_row(z, a, y, i)
        correct += _row_correct(a, y, i)
    stats[0] += loss
    stats[1] += correct


@_jit
def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    n, m = z.shape
    scale = z.dtype.type(1.0 / (n * m))
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) * scale
            loss += _binary_cross_entropy(z[i, j], a[i, j], y[i, j], one, zero)
        correct += _row_correct(a, y, i)
    stats[0] += loss / m
    stats[1] += correct


@_jit
def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    n, m = a.shape
    scale = a.dtype.type(grad_scale)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            diff = a[i, j] - y[i, j]
            da[i, j] = scale * diff
            loss += diff * diff
        correct += _row_correct(a, y, i)
    stats[0] += loss_scale * loss
    stats[1] += correct


def _sgd(p, g, lr):
    lr_t = p.dtype.type(lr)
    for i in prange(p.shape[0]):
        p[i] -= lr_t * g[i]


def _momentum(p, g, v, lr, mu):
    lr_t = p.dtype.type(lr)
    mu_t = p.dtype.type(mu)
    for i in prange(p.shape[0]):
        vi = mu_t * v[i] + g[i]
        v[i] = vi
        p[i] -= lr_t * vi


def _adam(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt):
    t = p.dtype.type
    b1 = t(beta1)
    b2 = t(beta2)
    c1 = t(1.0 - beta1)
    c2 = t(1.0 - beta2)
    step = t(step_size)
    inv_bc2 = t(1.0 / bc2_sqrt)
    eps_t = t(eps)
    for i in prange(p.shape[0]):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) * inv_bc2 + eps_t)


_sgd_kernel = _serial_and_parallel(_sgd)
_momentum_kernel = _serial_and_parallel(_momentum)
_adam_kernel = _serial_and_parallel(_adam)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _sgd_kernel(p, g, lr)


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _momentum_kernel(p, g, v, lr, mu)


def adam_update(p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    _adam_kernel(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt)


def _gather_rows(out, src, idx):
    for i in prange(idx.shape[0]):
        out[i, :] = src[idx[i], :]


_gather_rows_kernel = _serial_and_parallel(_gather_rows)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    _gather_rows_kernel(out, src, idx)




# --- convolutional networks: NHWC images, (rows, channels) matrices ------------------------------------------


def _contiguous_output(a):
    """``a`` itself when C-contiguous, else a C-contiguous scratch array to be copied back by ``_write_back``."""
    return a if a.flags.c_contiguous else np.empty(a.shape, a.dtype)


def _write_back(a, result) -> None:
    if result is not a:
        a[...] = result


def _row_chunks(size: int) -> int:
    """Row chunks of a column reduction: one when serial, several per thread when parallel."""
    return 4 * numba.get_num_threads() if size >= PARALLEL_MIN_SIZE else 1


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
    for r in prange(n_ * oh):
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


def _column_sums_f64(x, other, partial, out):
    """out[j] = sum_i x[i, j] (other is None) or sum_i x[i, j] * other[i, j], in float64, over ``len(partial)``
    chunks of rows (each summed into its own row of ``partial``, then added up in order)."""
    m, c = x.shape
    chunks = partial.shape[0]
    for k in prange(chunks):
        acc = partial[k]
        for j in range(c):
            acc[j] = 0.0
        for i in range(k * m // chunks, (k + 1) * m // chunks):
            if other is None:
                for j in range(c):
                    acc[j] += x[i, j]
            else:
                for j in range(c):
                    acc[j] += np.float64(x[i, j]) * other[i, j]
    for j in range(c):
        total = 0.0
        for k in range(chunks):
            total += partial[k, j]
        out[j] = total


def _squared_deviations_f64(x, mean, partial, out):
    """out[j] = sum_i (x[i, j] - mean[j])**2 in float64, chunked like ``_column_sums_f64``."""
    m, c = x.shape
    chunks = partial.shape[0]
    for k in prange(chunks):
        acc = partial[k]
        for j in range(c):
            acc[j] = 0.0
        for i in range(k * m // chunks, (k + 1) * m // chunks):
            for j in range(c):
                e = x[i, j] - mean[j]
                acc[j] += e * e
    for j in range(c):
        total = 0.0
        for k in range(chunks):
            total += partial[k, j]
        out[j] = total


def _normalise(y, xhat, x, gamma, beta, mean, inv):
    """xhat = (x - mean) * inv; y = gamma * xhat + beta, by rows (mean, inv in x's dtype)."""
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            h = (x[i, j] - mean[j]) * inv[j]
            xhat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


def _batch_norm_eval(y, x, gamma, beta, running_mean, running_var, eps):
    c = x.shape[1]
    scale = np.empty(c, x.dtype)
    for j in range(c):
        scale[j] = gamma[j] / math.sqrt(running_var[j] + eps)
    for i in prange(x.shape[0]):
        for j in range(c):
            y[i, j] = (x[i, j] - running_mean[j]) * scale[j] + beta[j]


def _batch_norm_dx(dx, dy, xhat, scale, m, dbeta, dgamma):
    """dx = scale * (m * dy - dbeta - xhat * dgamma) by rows; dx may be dy."""
    for i in prange(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = scale[j] * (m * dy[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


_im2col_kernel = _serial_and_parallel(_im2col)
_col2im_kernel = _serial_and_parallel(_col2im)
_max_pool_kernel = _serial_and_parallel(_max_pool)
_max_pool_backward_kernel = _serial_and_parallel(_max_pool_backward)
_dropout_kernel = _serial_and_parallel(_dropout)
_dropout_backward_kernel = _serial_and_parallel(_dropout_backward)
_random_shift_kernel = _serial_and_parallel(_random_shift)
_column_sums_kernel = _serial_and_parallel(_column_sums_f64)
_squared_deviations_kernel = _serial_and_parallel(_squared_deviations_f64)
_normalise_kernel = _serial_and_parallel(_normalise)
_batch_norm_eval_kernel = _serial_and_parallel(_batch_norm_eval)
_batch_norm_dx_kernel = _serial_and_parallel(_batch_norm_dx)


def im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """cols[n, i, j, p, q, c] = x[n, i*stride_h + p - pad_top, j*stride_w + q - pad_left, c], zero outside x;
    x (N, H, W, C), cols (N, OH, OW, KH, KW, C) (see ``reference.im2col``)."""
    check_windows(x.shape, cols.shape, stride_h, stride_w)
    result = _contiguous_output(cols)
    _im2col_kernel(result, np.ascontiguousarray(x), stride_h, stride_w, pad_top, pad_left)
    _write_back(cols, result)


def col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """The adjoint of ``im2col``: dx (N, H, W, C) = the sum of every cols entry that im2col reads from it."""
    check_windows(dx.shape, cols.shape, stride_h, stride_w)
    result = _contiguous_output(dx)
    _col2im_kernel(np.ascontiguousarray(cols), result, stride_h, stride_w, pad_top, pad_left)
    _write_back(dx, result)


def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out = the max of each pool_h x pool_w window (no padding); argmax (int32) = its p * pool_w + q, the
    first on ties."""
    check_pool(x.shape, out.shape, pool_h, pool_w, stride_h, stride_w)
    if argmax.dtype != np.int32:
        raise TypeError(f"max_pool: argmax must be int32, not {argmax.dtype}")
    results = [_contiguous_output(out), _contiguous_output(argmax)]
    _max_pool_kernel(*results, np.ascontiguousarray(x), pool_h, pool_w, stride_h, stride_w)
    _write_back(out, results[0])
    _write_back(argmax, results[1])


def max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = 0, plus each dout added at the position its argmax names (overlapping windows accumulate)."""
    check_pool(dx.shape, dout.shape, pool_h, pool_w, stride_h, stride_w)
    result = _contiguous_output(dx)
    _max_pool_backward_kernel(result, np.ascontiguousarray(dout), np.ascontiguousarray(argmax), pool_h, pool_w,
                              stride_h, stride_w)
    _write_back(dx, result)


def dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """mask = 1 / (1 - rate) where the hash of (seed, step, flat index) gives u >= rate, else 0; out = x * mask
    (see ``reference.dropout``); out may be x."""
    check_rate(rate)
    key, threshold, scale = dropout_constants(seed, step, rate, x.dtype)
    results = [_contiguous_output(out), _contiguous_output(mask)]
    _dropout_kernel(as_rows(results[0]), as_rows(x), as_rows(results[1]), key, threshold, scale)
    _write_back(out, results[0])
    _write_back(mask, results[1])


def dropout_backward(dout, mask, dx) -> None:
    """dx = dout * mask (dx may be dout)."""
    result = _contiguous_output(dx)
    _dropout_backward_kernel(as_rows(result), as_rows(dout), as_rows(mask))
    _write_back(dx, result)


def _shift(x, max_h: int, max_w: int, seed: int, step: int, out, sign: int) -> None:
    """Both directions in one kernel: ``sign`` 1 shifts forward, -1 back (the adjoint)."""
    check_shift(x, out, max_h, max_w)
    key, span_h, span_w = shift_constants(seed, step, max_h, max_w)
    result = _contiguous_output(out)
    _random_shift_kernel(result, np.ascontiguousarray(x), key, span_h, span_w, max_h, max_w, sign)
    _write_back(out, result)


def random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """out = every image of x (N, H, W, C) translated by its (down, right) shift hashed from (seed, step, image),
    zero where the source falls outside x (see ``reference.random_shift``); out must not be x."""
    _shift(x, max_h, max_w, seed, step, out, 1)


def random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """The adjoint of ``random_shift`` with the same (seed, step): every image translated back, zero filled."""
    _shift(dout, max_h, max_w, seed, step, dx, -1)


def batch_norm_train(x, gamma, beta, eps: float, momentum: float, running_mean, running_var, y, xhat,
                     inv_std) -> None:
    """Batch normalisation of x (M, C) by its column mean and biased variance (two passes, float64 sums);
    inv_std = 1 / sqrt(var + eps), xhat, y = gamma * xhat + beta, running stats updated the Keras way."""
    m, c = x.shape
    partial = np.empty((_row_chunks(x.size), c))
    mean = np.empty(c)
    var = np.empty(c)
    _column_sums_kernel(x, None, partial, mean)
    mean /= m
    _squared_deviations_kernel(x, mean, partial, var)
    var /= m
    inv = 1 / np.sqrt(var + eps)
    inv_std[...] = inv
    t = x.dtype.type
    mean_t = mean.astype(x.dtype)
    _normalise_kernel(y, xhat, x, gamma, beta, mean_t, inv.astype(x.dtype))
    running_mean *= t(momentum)
    running_mean += t(1 - momentum) * mean_t
    running_var *= t(momentum)
    running_var += t(1 - momentum) * var.astype(x.dtype)


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps: float, y) -> None:
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, for x (M, C)."""
    _batch_norm_eval_kernel(y, x, gamma, beta, running_mean, running_var, x.dtype.type(eps))


def batch_norm_backward(dy, xhat, gamma, inv_std, dx, dgamma, dbeta) -> None:
    """dbeta = column sums of dy, dgamma = column sums of dy * xhat (float64 sums); dx = gamma * inv_std / M *
    (M * dy - dbeta - xhat * dgamma); dx may be dy."""
    m, c = dy.shape
    partial = np.empty((_row_chunks(dy.size), c))
    sums = np.empty((2, c))
    _column_sums_kernel(dy, None, partial, sums[0])
    _column_sums_kernel(dy, xhat, partial, sums[1])
    t = dy.dtype.type
    db = sums[0].astype(dy.dtype)
    dg = sums[1].astype(dy.dtype)
    scale = gamma * inv_std / t(m)
    _batch_norm_dx_kernel(dx, dy, xhat, scale.astype(dy.dtype), t(m), db, dg)
    dbeta[...] = db
    dgamma[...] = dg
