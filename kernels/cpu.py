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

from . import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH
from .scalar import activate, binary_cross_entropy, cross_entropy_row, row_correct

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


@_jit(inline="always")
def _activate_row(kind, zi, b, alpha, ai, di, one, zero):
    """One row of bias + activation; inlined with a constant ``kind`` so each loop compiles to its own SIMD code."""
    for j in range(zi.shape[0]):
        v = zi[j] + b[j]
        zi[j] = v
        f, df = _activate(kind, v, alpha, one, zero)
        ai[j] = f
        if di is not None:
            di[j] = df


@_jit(inline="always")
def _softmax_row(zi, b, ai, one, zero):
    top = zi[0] + b[0]
    for j in range(zi.shape[0]):
        v = zi[j] + b[j]
        zi[j] = v
        top = max(top, v)
    total = zero
    for j in range(zi.shape[0]):
        e = math.exp(zi[j] - top)
        ai[j] = e
        total += e
    inv = one / total
    for j in range(zi.shape[0]):
        ai[j] *= inv


def _bias_activation(z, b, activation, alpha, a, d):
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used).

    The activation is chosen once per row, not per element: a branch inside the inner loop would stop it
    vectorising (ReLU ran five times slower that way).
    """
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    alpha_t = z.dtype.type(alpha)
    for i in prange(z.shape[0]):
        di = None if d is None else d[i]
        if activation == SOFTMAX:
            _softmax_row(z[i], b, a[i], one, zero)
        elif activation == RELU:
            _activate_row(RELU, z[i], b, alpha_t, a[i], di, one, zero)
        elif activation == LEAKY_RELU:
            _activate_row(LEAKY_RELU, z[i], b, alpha_t, a[i], di, one, zero)
        elif activation == SIGMOID:
            _activate_row(SIGMOID, z[i], b, alpha_t, a[i], di, one, zero)
        elif activation == TANH:
            _activate_row(TANH, z[i], b, alpha_t, a[i], di, one, zero)
        else:
            _activate_row(IDENTITY, z[i], b, alpha_t, a[i], di, one, zero)


def _activation_backward(dz, da, d, a, activation, db, partial):
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz. dz comes first (size).

    Rows are split into ``len(partial)`` chunks, each summing its bias gradient into its own row of ``partial``
    (one chunk when serial): rows stay the inner, contiguous, vectorised loop.
    """
    n, m = dz.shape
    chunks = partial.shape[0]
    zero = dz.dtype.type(0.0)
    for c in prange(chunks):
        acc = partial[c]
        for j in range(m):
            acc[j] = zero
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            if activation == SOFTMAX:
                s = zero
                for j in range(m):
                    s += da[i, j] * a[i, j]
                for j in range(m):
                    g = a[i, j] * (da[i, j] - s)
                    dz[i, j] = g
                    acc[j] += g
            else:
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
    _bias_activation_kernel(z, b, activation, alpha, a, d)


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
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

