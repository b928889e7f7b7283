"""Numba CUDA kernels: the GPU twins of ``cpu.py``, for CuPy arrays (or NumPy arrays under Numba's simulator).

Each public function has the same name, signature and meaning as its twin in ``reference.py``. Kernels work on
CuPy arrays in place, without copies, and are launched on CuPy's current stream, so they queue up behind the
CuPy work that made their inputs and never make the host wait. Elementwise work uses grid-stride loops;
row-wise work (softmax, losses: they need a row's maximum or argmax) takes one thread per row; the bias
gradient takes one thread per column. Losses add to ``stats`` with float64 atomics.

Every kernel is compiled for one explicit signature per dtype (float32 or float64, arrays of any layout), all
at once on the first call for that dtype or earlier through ``compile_kernels``. A kernel compiled for exactly
one signature launches without typing its arguments, most of Numba's per-launch cost. Scalars are passed as
the arrays' dtype, so float32 work stays in float32.

NumPy arrays work too (the tests use them under ``NUMBA_ENABLE_CUDASIM=1``): Numba copies each one to the
device and back after the launch. Arguments that may alias (``dz`` and ``da``) are ordered so that the output
is copied back last and wins.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from numba import boolean, config, cuda, float32, float64, int32, int64, uint64, void
from numba.core.types import Array, Float

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
from .hue import hue_histograms_cuda
from .reference import array_module
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
from .sets import ReferenceKernels

THREADS_PER_BLOCK = 32 if config.ENABLE_CUDASIM else 256
"""Threads per block (few under the simulator, which runs every thread as a Python thread)."""

MAX_BLOCKS = 4 if config.ENABLE_CUDASIM else 4096
"""Most blocks per launch; grid-stride loops cover the rest."""

_FLOAT_TYPES: dict[np.dtype, Float] = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}
_ELEMENTWISE = (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU)


_activate = cuda.jit(device=True)(activate)
_row_correct = cuda.jit(device=True)(row_correct)
_binary_cross_entropy = cuda.jit(device=True)(binary_cross_entropy)
_cross_entropy_row = cuda.jit(device=True)(cross_entropy_row)
_dropout_draw = cuda.jit(device=True)(
    with_helpers(
        dropout_draw,
        murmur_round=cuda.jit(device=True)(murmur_round),
        murmur_finish=cuda.jit(device=True)(murmur_finish),
    )
)
_image_shift = cuda.jit(device=True)(with_helpers(image_shift, dropout_draw=_dropout_draw))

REDUCTION_THREADS = THREADS_PER_BLOCK * MAX_BLOCKS if config.ENABLE_CUDASIM else 1 << 18
"""Threads the first stage of a column reduction aims for (each sums a strided share of one column's rows into
a float64 partial), enough to fill a device; ``REDUCTION_MIN_ROWS`` keeps each share from getting too small to
be worth its partial. The second stage sums each column's partials with one block per column."""

REDUCTION_MIN_ROWS = 32


def _bias_activation(z, b, d, a, activation, alpha, write_d):
    """Elementwise activations: z += b; a = f(z); d = f'(z) when write_d (else d is a stand-in, untouched)."""
    n, m = z.shape
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        v = z[i, j] + b[j]
        z[i, j] = v
        f, df = _activate(activation, v, alpha, one, zero)
        a[i, j] = f
        if write_d:
            d[i, j] = df


def _softmax_forward(z, b, a):
    """Softmax, one thread per row: z += b; a = exp(z - max) / sum."""
    n, m = z.shape
    zero = z.dtype.type(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        top = z[i, 0] + b[0]
        for j in range(m):
            v = z[i, j] + b[j]
            z[i, j] = v
            if v > top:
                top = v
        total = zero
        for j in range(m):
            e = math.exp(z[i, j] - top)
            a[i, j] = e
            total += e
        for j in range(m):
            a[i, j] /= total


def _backward_columns(da, d, dz, db):
    """One thread per column: dz = da * d down the column, db = its sum (dz may alias da)."""
    n, m = dz.shape
    zero = dz.dtype.type(0.0)
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = zero
        for i in range(n):
            g = da[i, j] * d[i, j]
            dz[i, j] = g
            s += g
        db[j] = s


def _softmax_backward_rows(da, a, dz):
    """One thread per row: dz = a * (da - sum(da * a)); dz may alias da (a row is read, then written)."""
    n, m = dz.shape
    zero = dz.dtype.type(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = zero
        for j in range(m):
            s += da[i, j] * a[i, j]
        for j in range(m):
            dz[i, j] = a[i, j] * (da[i, j] - s)


def _column_sums(x, out):
    """One thread per column: out[j] = sum_i x[i, j]."""
    n, m = x.shape
    zero = x.dtype.type(0.0)
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = zero
        for i in range(n):
            s += x[i, j]
        out[j] = s


def _softmax_cross_entropy(z, a, y, dz, stats, n_t):
    """One thread per row: dz = (a - y) / n; loss -= sum(y * log_softmax(z)); correct count."""
    n, m = z.shape
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) / n_t
        loss += _cross_entropy_row(z, a, y, i)
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss)
        cuda.atomic.add(stats, 1, correct)


def _sigmoid_binary_cross_entropy(z, a, y, dz, stats, nm_t):
    """One thread per row: dz = (a - y) / (n * m); loss += stable BCE averaged over outputs; correct count."""
    n, m = z.shape
    zero = z.dtype.type(0.0)
    one = z.dtype.type(1.0)
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        row = zero
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) / nm_t
            row += _binary_cross_entropy(z[i, j], a[i, j], y[i, j], one, zero)
        loss += row
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss / m)
        cuda.atomic.add(stats, 1, correct)


def _squared_error(a, y, da, stats, grad_scale, loss_scale):
    """One thread per row: da = grad_scale * (a - y); loss += loss_scale * sum (a - y)^2; correct count."""
    n, m = a.shape
    zero = a.dtype.type(0.0)
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        row = zero
        for j in range(m):
            diff = a[i, j] - y[i, j]
            da[i, j] = grad_scale * diff
            row += diff * diff
        loss += row
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss_scale * loss)
        cuda.atomic.add(stats, 1, correct)


def _sgd(p, g, lr):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


def _momentum(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        vi = mu * v[i] + g[i]
        v[i] = vi
        p[i] -= lr * vi


def _adam(p, g, m, v, step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        gi = g[i]
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


def _gather_rows(src, out, idx):
    n, m = out.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        out[i, j] = src[idx[i], j]


# --- convolutional networks: NHWC images, (rows, channels) matrices ------------------------------------------


def _im2col(x, cols, stride_h, stride_w, pad_top, pad_left):
    """One thread per cols element (channels fastest, so neighbours read and write neighbours)."""
    _, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    zero = cols.dtype.type(0.0)
    for k in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        q = r % kw
        r //= kw
        p = r % kh
        r //= kh
        j = r % ow
        r //= ow
        i = r % oh
        n = r // oh
        hh = i * stride_h + p - pad_top
        ww = j * stride_w + q - pad_left
        if hh >= 0 and hh < h_ and ww >= 0 and ww < w_:
            cols[n, i, j, p, q, c] = x[n, hh, ww, c]
        else:
            cols[n, i, j, p, q, c] = zero


def _col2im(cols, dx, stride_h, stride_w, pad_top, pad_left):
    """One thread per dx element, gathering every cols entry that reads it: no two threads write one place."""
    _, h_, w_, c_ = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        w = r % w_
        r //= w_
        h = r % h_
        n = r // h_
        s = dx.dtype.type(0.0)
        for p in range(kh):
            hi = h + pad_top - p
            if hi < 0:
                break
            i = hi // stride_h
            if i * stride_h != hi or i >= oh:
                continue
            for q in range(kw):
                wj = w + pad_left - q
                if wj < 0:
                    break
                j = wj // stride_w
                if j * stride_w == wj and j < ow:
                    s += cols[n, i, j, p, q, c]
        dx[n, h, w, c] = s


def _max_pool(x, out, argmax, pool_h, pool_w, stride_h, stride_w):
    """One thread per output element: the window's first maximum and its p * pool_w + q."""
    _, oh, ow, c_ = out.shape
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        j = r % ow
        r //= ow
        i = r % oh
        n = r // oh
        h0 = i * stride_h
        w0 = j * stride_w
        best = x[n, h0, w0, c]
        where = 0
        for p in range(pool_h):
            for q in range(pool_w):
                v = x[n, h0 + p, w0 + q, c]
                if v > best:
                    best = v
                    where = p * pool_w + q
        out[n, i, j, c] = best
        argmax[n, i, j, c] = where


def _max_pool_backward(dout, dx, argmax, pool_h, pool_w, stride_h, stride_w):
    """One thread per dx element, summing the dout of every window whose argmax names it (no races)."""
    _, h_, w_, c_ = dx.shape
    _, oh, ow, _ = dout.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        w = r % w_
        r //= w_
        h = r % h_
        n = r // h_
        s = dx.dtype.type(0.0)
        # windows i_first..i_last reach row h (if/else, not min/max: Numba's CUDA max(int, int) fails to compile)
        i_first = (h - pool_h + stride_h) // stride_h if h >= pool_h else 0
        j_first = (w - pool_w + stride_w) // stride_w if w >= pool_w else 0
        i_end = h // stride_h + 1
        if i_end > oh:
            i_end = oh
        j_end = w // stride_w + 1
        if j_end > ow:
            j_end = ow
        for i in range(i_first, i_end):
            p = h - i * stride_h
            for j in range(j_first, j_end):
                if argmax[n, i, j, c] == p * pool_w + w - j * stride_w:
                    s += dout[n, i, j, c]
        dx[n, h, w, c] = s


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


def _dropout_backward(dout, mask, dx):
    n, m = dx.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        dx[i, j] = dout[i, j] * mask[i, j]


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


def _column_partials(x, partial):
    """Stage one of the column sums: thread (r, j) sums rows r, r + R, r + 2R, ... of column j into partial[r, j]
    (R = len(partial)) in float64; neighbouring threads read neighbouring columns of a row."""
    n, m = x.shape
    chunks = partial.shape[0]
    for k in range(cuda.grid(1), chunks * m, cuda.gridsize(1)):
        r = k // m
        j = k - r * m
        s = 0.0
        for i in range(r, n, chunks):
            s += x[i, j]
        partial[r, j] = s


def _deviation_partials(x, mean, partial):
    """Stage one of sum (x - mean)^2 per column, like ``_column_partials`` (mean is float64)."""
    n, m = x.shape
    chunks = partial.shape[0]
    for k in range(cuda.grid(1), chunks * m, cuda.gridsize(1)):
        r = k // m
        j = k - r * m
        s = 0.0
        for i in range(r, n, chunks):
            e = x[i, j] - mean[j]
            s += e * e
        partial[r, j] = s


def _product_partials(dy, xhat, partial_dy, partial_product):
    """Stage one of the sums of dy and of dy * xhat per column, like ``_column_partials``."""
    n, m = dy.shape
    chunks = partial_dy.shape[0]
    for k in range(cuda.grid(1), chunks * m, cuda.gridsize(1)):
        r = k // m
        j = k - r * m
        s = 0.0
        sp = 0.0
        for i in range(r, n, chunks):
            g = float64(dy[i, j])
            s += g
            sp += g * xhat[i, j]
        partial_dy[r, j] = s
        partial_product[r, j] = sp


@cuda.jit(device=True)
def _block_sum(value, shared):
    """The sum of every thread's ``value`` in the block, by a tree in ``shared`` memory; every thread gets it.
    All the block's threads must call it (it synchronises them)."""
    t = cuda.threadIdx.x
    shared[t] = value
    cuda.syncthreads()
    half = THREADS_PER_BLOCK // 2
    while half > 0:
        if t < half:
            shared[t] += shared[t + half]
        cuda.syncthreads()
        half //= 2
    total = shared[0]
    cuda.syncthreads()  # everyone has read it before shared is written again
    return total


def _finish_mean(mean_t, partial, mean, rows):
    """Stage two, one block per column: mean = the sum of the column's partials / rows (float64, and in mean_t's
    dtype)."""
    shared = cuda.shared.array(THREADS_PER_BLOCK, float64)
    for j in range(cuda.blockIdx.x, mean.shape[0], cuda.gridDim.x):
        s = 0.0
        for r in range(cuda.threadIdx.x, partial.shape[0], THREADS_PER_BLOCK):
            s += partial[r, j]
        total = _block_sum(s, shared)
        if cuda.threadIdx.x == 0:
            mean[j] = total / rows
            mean_t[j] = total / rows


def _finish_variance(mean_t, inv_std, running_mean, running_var, partial, rows, eps, momentum, one_minus):
    """Stage two, one block per column: biased variance, inv_std = 1 / sqrt(var + eps), running statistics."""
    shared = cuda.shared.array(THREADS_PER_BLOCK, float64)
    for j in range(cuda.blockIdx.x, mean_t.shape[0], cuda.gridDim.x):
        s = 0.0
        for r in range(cuda.threadIdx.x, partial.shape[0], THREADS_PER_BLOCK):
            s += partial[r, j]
        var = _block_sum(s, shared) / rows
        if cuda.threadIdx.x == 0:
            inv_std[j] = 1.0 / math.sqrt(var + eps)
            running_mean[j] = momentum * running_mean[j] + one_minus * mean_t[j]
            running_var[j] = momentum * running_var[j] + one_minus * mean_t.dtype.type(var)


def _normalise(x, gamma, beta, mean_t, inv_std, xhat, y):
    """Elementwise: xhat = (x - mean) * inv_std; y = gamma * xhat + beta."""
    n, m = x.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        h = (x[i, j] - mean_t[j]) * inv_std[j]
        xhat[i, j] = h
        y[i, j] = gamma[j] * h + beta[j]


def _batch_norm_eval(x, gamma, beta, running_mean, running_var, y, eps):
    n, m = x.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        scale = gamma[j] / math.sqrt(running_var[j] + eps)
        y[i, j] = (x[i, j] - running_mean[j]) * scale + beta[j]


def _finish_backward(dbeta, dgamma, partial_dy, partial_product):
    """Stage two, one block per column: dbeta and dgamma from their partial sums."""
    shared = cuda.shared.array(THREADS_PER_BLOCK, float64)
    for j in range(cuda.blockIdx.x, dbeta.shape[0], cuda.gridDim.x):
        s = 0.0
        sp = 0.0
        for r in range(cuda.threadIdx.x, partial_dy.shape[0], THREADS_PER_BLOCK):
            s += partial_dy[r, j]
            sp += partial_product[r, j]
        s = _block_sum(s, shared)
        sp = _block_sum(sp, shared)
        if cuda.threadIdx.x == 0:
            dbeta[j] = s
            dgamma[j] = sp


def _batch_norm_dx(dy, xhat, gamma, inv_std, dbeta, dgamma, dx, rows):
    """Elementwise: dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma); dx may alias dy."""
    n, m = dx.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        scale = gamma[j] * inv_std[j] / rows
        dx[i, j] = scale * (rows * dy[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


def _signatures(t: Float) -> dict[str, tuple[Any, Any]]:
    """Each kernel's Python function and its one signature for element type ``t`` (arrays of any layout)."""
    m2, v1, stats = Array(t, 2, "A"), Array(t, 1, "A"), Array(float64, 1, "A")
    m4, m6, i4 = Array(t, 4, "A"), Array(t, 6, "A"), Array(int32, 4, "A")
    d1, d2 = Array(float64, 1, "A"), Array(float64, 2, "A")
    return {
        "bias_activation": (_bias_activation, void(m2, v1, m2, m2, int32, t, boolean)),
        "softmax_forward": (_softmax_forward, void(m2, v1, m2)),
        "backward_columns": (_backward_columns, void(m2, m2, m2, v1)),
        "softmax_backward_rows": (_softmax_backward_rows, void(m2, m2, m2)),
        "column_sums": (_column_sums, void(m2, v1)),
        "softmax_cross_entropy": (_softmax_cross_entropy, void(m2, m2, m2, m2, stats, t)),
        "sigmoid_binary_cross_entropy": (_sigmoid_binary_cross_entropy, void(m2, m2, m2, m2, stats, t)),
        "squared_error": (_squared_error, void(m2, m2, m2, stats, t, t)),
        "sgd": (_sgd, void(v1, v1, t)),
        "momentum": (_momentum, void(v1, v1, v1, t, t)),
        "adam": (_adam, void(v1, v1, v1, v1, t, t, t, t, t, t, t)),
        "gather_rows": (_gather_rows, void(m2, m2, Array(int64, 1, "A"))),
        "im2col": (_im2col, void(m4, m6, int64, int64, int64, int64)),
        "col2im": (_col2im, void(m6, m4, int64, int64, int64, int64)),
        "max_pool": (_max_pool, void(m4, m4, i4, int64, int64, int64, int64)),
        "max_pool_backward": (_max_pool_backward, void(m4, m4, i4, int64, int64, int64, int64)),
        "dropout": (_dropout, void(m2, m2, m2, uint64, uint64, t)),
        "dropout_backward": (_dropout_backward, void(m2, m2, m2)),
        "random_shift": (_random_shift, void(m4, m4, uint64, uint64, uint64, int64, int64, int64)),
        "column_partials": (_column_partials, void(m2, d2)),
        "deviation_partials": (_deviation_partials, void(m2, d1, d2)),
        "product_partials": (_product_partials, void(m2, m2, d2, d2)),
        "finish_mean": (_finish_mean, void(v1, d2, d1, float64)),
        "finish_variance": (_finish_variance, void(v1, v1, v1, v1, d2, float64, float64, t, t)),
        "normalise": (_normalise, void(m2, v1, v1, v1, v1, m2, m2)),
        "batch_norm_eval": (_batch_norm_eval, void(m2, v1, v1, v1, v1, m2, t)),
        "finish_backward": (_finish_backward, void(v1, v1, d2, d2)),
        "batch_norm_dx": (_batch_norm_dx, void(m2, m2, v1, v1, v1, v1, m2, t)),
    }


_compiled: dict[np.dtype, dict[str, Any]] = {}


def compile_kernels(dtype: Any) -> dict[str, Any]:
    """Compile (once) every kernel for ``dtype`` (float32 or float64) and return them by name."""
    dtype = np.dtype(dtype)
    kernels = _compiled.get(dtype)
    if kernels is None:
        if dtype not in _FLOAT_TYPES:
            raise TypeError(f"CUDA kernels compute in float32 or float64, not {dtype}")
        kernels = {
            name: cuda.jit(signature, cache=True)(func)
            for name, (func, signature) in _signatures(_FLOAT_TYPES[dtype]).items()
        }
        _compiled[dtype] = kernels
    return kernels


def _require(name: str, label: str, x: Any, dtype: Any) -> None:
    """Refuse an array of the wrong dtype: a kernel compiled for one signature would misread it."""
    if x.dtype != dtype:
        raise TypeError(f"CUDA kernel {name}: {label} must be {np.dtype(dtype)}, not {x.dtype}")


def _launch(name: str, work: int, arrays: tuple, scalars: tuple = (), tail: Any = None) -> None:
    """Run kernel ``name`` over ``work`` items for the dtype ``arrays`` share, then ``tail`` (an array or a
    tuple of arrays of other dtypes, pre-checked)."""
    dtype = arrays[0].dtype
    for x in arrays:
        if x.dtype != dtype:
            raise TypeError(f"CUDA kernel {name}: arrays mix {dtype} and {x.dtype}; all must have one dtype")
    if tail is not None:
        arrays = (*arrays, *(tail if isinstance(tail, tuple) else (tail,)))
    kernel = compile_kernels(dtype)[name]
    blocks = min(MAX_BLOCKS, max(1, -(-work // THREADS_PER_BLOCK)))
    if isinstance(arrays[0], np.ndarray):
        kernel[blocks, THREADS_PER_BLOCK](*arrays, *scalars)
        return
    import cupy

    stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
    # Wrapped without sync: the launch is queued on the stream that made the inputs, so waiting is not needed.
    views = [cuda.as_cuda_array(x, sync=False) for x in arrays]
    kernel[blocks, THREADS_PER_BLOCK, stream](*views, *scalars)


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    n, m = z.shape
    if activation == SOFTMAX:
        _launch("softmax_forward", n, (z, b, a))
    elif activation in _ELEMENTWISE:
        # Without d, a stands in for it; it comes after d so that, for host arrays, its copy-back wins.
        stand_in = a if d is None else d
        _launch("bias_activation", n * m, (z, b, stand_in, a), (activation, alpha, d is not None))
    else:
        check_activation(activation)


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    check_activation(activation)
    n, m = dz.shape
    if activation == SOFTMAX:
        _launch("softmax_backward_rows", n, (da, a, dz))
        _launch("column_sums", m, (dz, db))
    else:
        _launch("backward_columns", m, (da, d, dz, db))


def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    _require("softmax_cross_entropy", "stats", stats, np.float64)
    _launch("softmax_cross_entropy", z.shape[0], (z, a, y, dz), (z.shape[0],), stats)


def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    _require("sigmoid_binary_cross_entropy", "stats", stats, np.float64)
    _launch("sigmoid_binary_cross_entropy", z.shape[0], (z, a, y, dz), (z.size,), stats)


def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    _require("squared_error", "stats", stats, np.float64)
    _launch("squared_error", a.shape[0], (a, y, da), (grad_scale, loss_scale), stats)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _launch("sgd", p.shape[0], (p, g), (lr,))


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _launch("momentum", p.shape[0], (p, g, v), (lr, mu))


def adam_update(
    p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float
) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    scalars = (step_size, beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, 1.0 / bc2_sqrt)
    _launch("adam", p.shape[0], (p, g, m, v), scalars)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch); idx is int64, every entry in [0, len(src))."""
    _require("gather_rows", "idx", idx, np.int64)
    _launch("gather_rows", out.size, (src, out), tail=idx)



# --- convolutional networks ----------------------------------------------------------------------------------


def _require_int32(name: str, argmax: Any) -> None:
    _require(name, "argmax", argmax, np.int32)


def im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """cols[n, i, j, p, q, c] = x[n, i*stride_h + p - pad_top, j*stride_w + q - pad_left, c], zero outside x;
    x (N, H, W, C), cols (N, OH, OW, KH, KW, C) (see ``reference.im2col``)."""
    check_windows(x.shape, cols.shape, stride_h, stride_w)
    _launch("im2col", cols.size, (x, cols), (stride_h, stride_w, pad_top, pad_left))


def col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """The adjoint of ``im2col``: dx (N, H, W, C) = the sum of every cols entry that im2col reads from it."""
    check_windows(dx.shape, cols.shape, stride_h, stride_w)
    _launch("col2im", dx.size, (cols, dx), (stride_h, stride_w, pad_top, pad_left))


def max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """out = the max of each pool_h x pool_w window (no padding); argmax (int32) = its p * pool_w + q, the
    first on ties."""
    check_pool(x.shape, out.shape, pool_h, pool_w, stride_h, stride_w)
    _require_int32("max_pool", argmax)
    _launch("max_pool", out.size, (x, out), (pool_h, pool_w, stride_h, stride_w), argmax)


def max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """dx = 0, plus each dout added at the position its argmax names (overlapping windows accumulate)."""
    check_pool(dx.shape, dout.shape, pool_h, pool_w, stride_h, stride_w)
    _require_int32("max_pool_backward", argmax)
    _launch("max_pool_backward", dx.size, (dout, dx), (pool_h, pool_w, stride_h, stride_w), argmax)


def _contiguous_output(a: Any) -> Any:
    """``a`` itself when C-contiguous (so ``as_rows`` is a view of it), else C-contiguous scratch to copy back."""
    return a if a.flags.c_contiguous else array_module(a).empty(a.shape, a.dtype)


def _write_back(a: Any, result: Any) -> None:
    if result is not a:
        a[...] = result


def dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """mask = 1 / (1 - rate) where the hash of (seed, step, flat index) gives u >= rate, else 0; out = x * mask
    (see ``reference.dropout``); out may be x."""
    check_rate(rate)
    key, threshold, scale = dropout_constants(seed, step, rate, x.dtype)
    results = [_contiguous_output(mask), _contiguous_output(out)]
    # out comes last: for host arrays its copy-back wins over x's when the two are one array
    _launch("dropout", x.size, (as_rows(x), *(as_rows(r) for r in results)), (key, threshold, scale))
    _write_back(mask, results[0])
    _write_back(out, results[1])


def dropout_backward(dout, mask, dx) -> None:
    """dx = dout * mask (dx may be dout)."""
    result = _contiguous_output(dx)
    _launch("dropout_backward", dx.size, (as_rows(dout), as_rows(mask), as_rows(result)))
    _write_back(dx, result)


def _shift(x, max_h: int, max_w: int, seed: int, step: int, out, sign: int) -> None:
    """Both directions in one kernel: ``sign`` 1 shifts forward, -1 back (the adjoint)."""
    check_shift(x, out, max_h, max_w)
    key, span_h, span_w = shift_constants(seed, step, max_h, max_w)
    _launch("random_shift", out.size, (x, out), (key, span_h, span_w, max_h, max_w, sign))


def random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """out = every image of x (N, H, W, C) translated by its (down, right) shift hashed from (seed, step, image),
    zero where the source falls outside x (see ``reference.random_shift``); out must not be x."""
    _shift(x, max_h, max_w, seed, step, out, 1)


def random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """The adjoint of ``random_shift`` with the same (seed, step): every image translated back, zero filled."""
    _shift(dout, max_h, max_w, seed, step, dx, -1)


def _reduction_chunks(rows: int, columns: int) -> int:
    """How many strided row shares (stage-one threads per column) a column reduction uses."""
    return max(1, min(-(-rows // REDUCTION_MIN_ROWS), -(-REDUCTION_THREADS // max(columns, 1))))


def batch_norm_train(x, gamma, beta, eps: float, momentum: float, running_mean, running_var, y, xhat,
                     inv_std) -> None:
    """Batch normalisation of x (M, C) by its column mean and biased variance (two passes, float64 sums);
    inv_std = 1 / sqrt(var + eps), xhat, y = gamma * xhat + beta, running stats updated the Keras way.

    Each column sum runs in two stages: many threads per column sum strided rows into float64 partials, then
    one block per column adds its partials up in shared memory.
    """
    xp = array_module(x)
    rows, columns = x.shape
    partial = xp.empty((_reduction_chunks(rows, columns), columns), np.float64)
    mean = xp.empty(columns, np.float64)
    mean_t = xp.empty(columns, x.dtype)
    _launch("column_partials", partial.size, (x,), tail=partial)
    _launch("finish_mean", columns * THREADS_PER_BLOCK, (mean_t,), (float(rows),), (partial, mean))
    _launch("deviation_partials", partial.size, (x,), tail=(mean, partial))
    t = x.dtype.type
    _launch("finish_variance", columns * THREADS_PER_BLOCK, (mean_t, inv_std, running_mean, running_var),
            (float(rows), float(eps), t(momentum), t(1 - momentum)), (partial,))
    _launch("normalise", x.size, (x, gamma, beta, mean_t, inv_std, xhat, y))


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps: float, y) -> None:
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, for x (M, C)."""
    _launch("batch_norm_eval", x.size, (x, gamma, beta, running_mean, running_var, y), (eps,))


def batch_norm_backward(dy, xhat, gamma, inv_std, dx, dgamma, dbeta) -> None:
    """dbeta = column sums of dy, dgamma = column sums of dy * xhat (float64 sums, in two stages as in
    ``batch_norm_train``); dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma); dx may be dy."""
    xp = array_module(dy)
    rows, columns = dy.shape
    partials = xp.empty((2, _reduction_chunks(rows, columns), columns), np.float64)
    _launch("product_partials", partials[0].size, (dy, xhat), tail=(partials[0], partials[1]))
    _launch("finish_backward", columns * THREADS_PER_BLOCK, (dbeta, dgamma), tail=(partials[0], partials[1]))
    # dx comes last: for host arrays its copy-back wins over dy's when the two are one array
    _launch("batch_norm_dx", dx.size, (dy, xhat, gamma, inv_std, dbeta, dgamma, dx), (rows,))


class CudaKernels(ReferenceKernels, implementations=sys.modules[__name__]):
    """Numba CUDA kernels on CuPy's current stream; what this module lacks falls back to the CuPy reference."""

    mode = "fused"
    device = "gpu"
    hue_histograms = staticmethod(hue_histograms_cuda)

    def compile(self, dtype: Any) -> None:
        compile_kernels(dtype)
