"""Numba CPU optimizer updates: one pass over the flat buffers (parallel for very large ones)."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .. import scalar
from ..numba_cpu import jit, serial_and_parallel

_clip_scale = jit(inline="always")(scalar.clip_scale)
_regularized_gradient = jit(inline="always")(scalar.regularized_gradient)
_normal_or_zero = jit(inline="always")(scalar.normal_or_zero)
_momentum_at, _adam_at, _rmsprop_at = (jit(inline="always")(scalar.with_helpers(at, normal_or_zero=_normal_or_zero))
                                       for at in (scalar.momentum_at, scalar.adam_at, scalar.rmsprop_at))


def _sgd(p, g, lr):
    lr_t = p.dtype.type(lr)
    for i in prange(p.shape[0]):
        p[i] -= lr_t * g[i]


def _momentum(p, g, v, lr, mu, tiny):
    t = p.dtype.type
    lr_t, mu_t, tiny_t = t(lr), t(mu), t(tiny)
    for i in prange(p.shape[0]):
        _momentum_at(p, v, i, g[i], lr_t, mu_t, False, tiny_t)


def _adam(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt, tiny):
    t = p.dtype.type
    b1, b2, c1, c2 = t(beta1), t(beta2), t(1.0 - beta1), t(1.0 - beta2)
    step, eps_t, inv_bc2, tiny_t = t(step_size), t(eps), t(1.0 / bc2_sqrt), t(tiny)
    for i in prange(p.shape[0]):
        _adam_at(p, m, v, i, p[i], g[i], step, b1, b2, c1, c2, eps_t, inv_bc2, tiny_t)


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
SGD_PARALLEL_MIN = 100_000
MOMENTUM_PARALLEL_MIN = 100_000
ADAM_PARALLEL_MIN = 100_000

_sgd_kernel = serial_and_parallel(_sgd, SGD_PARALLEL_MIN)


_momentum_kernel = serial_and_parallel(_momentum, MOMENTUM_PARALLEL_MIN)


_adam_kernel = serial_and_parallel(_adam, ADAM_PARALLEL_MIN)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _sgd_kernel(p, g, lr)


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _momentum_kernel(p, g, v, lr, mu, np.finfo(p.dtype).tiny)


def adam_update(p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    _adam_kernel(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt, np.finfo(p.dtype).tiny)


# --- the plain updates with [lr, step] read from an array (a replayed step: ``xpnet.kernel_replay``) --------------
# The scalars are computed from it in float64 as the optimizers compute them on the host (``Adam._scalars``), so a
# replayed step updates exactly as an eager one.


def sgd_update_hyper(p, g, hyper) -> None:
    """``sgd_update`` with the learning rate in ``hyper[0]`` (float64 ``[lr, step]``)."""
    sgd_update(p, g, float(hyper[0]))


def momentum_update_hyper(p, g, v, hyper, mu: float) -> None:
    """``momentum_update`` with the learning rate in ``hyper[0]``."""
    momentum_update(p, g, v, float(hyper[0]), mu)


def adam_update_hyper(p, g, m, v, hyper, beta1: float, beta2: float, eps: float) -> None:
    """``adam_update`` with the learning rate and step in ``hyper`` (``[lr, step]``)."""
    lr, step = float(hyper[0]), float(hyper[1])
    adam_update(p, g, m, v, lr / (1 - beta1**step), beta1, beta2, eps, math.sqrt(1 - beta2**step))


# --- regularised updates: decay mask d, global-norm clipping from the device scalar norm_sq ------------------------


@jit
def _squared_norm(g):
    """One serial pass: a parallel sum's order would depend on the thread count (results must not)."""
    total = 0.0
    for i in range(g.shape[0]):
        total += g[i] * g[i]
    return total


def _sgd_regularized(p, g, d, norm_sq, clip, lr, l2):
    t = p.dtype.type
    s, lr_t, l2_t = t(_clip_scale(norm_sq, clip)), t(lr), t(l2)
    for i in prange(p.shape[0]):
        p[i] -= lr_t * _regularized_gradient(p, g, d, i, s, l2_t)


def _momentum_regularized(p, g, v, d, norm_sq, clip, lr, mu, l2, nesterov, tiny):
    t = p.dtype.type
    s, lr_t, mu_t, l2_t, tiny_t = t(_clip_scale(norm_sq, clip)), t(lr), t(mu), t(l2), t(tiny)
    for i in prange(p.shape[0]):
        _momentum_at(p, v, i, _regularized_gradient(p, g, d, i, s, l2_t), lr_t, mu_t, nesterov, tiny_t)


def _adam_regularized(p, g, m, v, d, norm_sq, clip, step_size, beta1, beta2, eps, bc2_sqrt, l2, decay, tiny):
    t = p.dtype.type
    s = t(_clip_scale(norm_sq, clip))
    b1, b2, c1, c2 = t(beta1), t(beta2), t(1.0 - beta1), t(1.0 - beta2)
    step, eps_t, inv_bc2, tiny_t = t(step_size), t(eps), t(1.0 / bc2_sqrt), t(tiny)
    l2_t, decay_t, one = t(l2), t(decay), t(1.0)
    for i in prange(p.shape[0]):
        gi = _regularized_gradient(p, g, d, i, s, l2_t)
        _adam_at(p, m, v, i, p[i] * (one - decay_t * d[i]), gi, step, b1, b2, c1, c2, eps_t, inv_bc2, tiny_t)


def _rmsprop(p, g, sq, buf, avg, d, norm_sq, clip, lr, alpha, eps, l2, mu, centered, tiny):
    t = p.dtype.type
    s, lr_t, a, c = t(_clip_scale(norm_sq, clip)), t(lr), t(alpha), t(1.0 - alpha)
    eps_t, l2_t, mu_t, tiny_t = t(eps), t(l2), t(mu), t(tiny)
    for i in prange(p.shape[0]):
        gi = _regularized_gradient(p, g, d, i, s, l2_t)
        _rmsprop_at(p, sq, buf, avg, i, gi, lr_t, a, c, eps_t, mu_t, centered, tiny_t)


# Each regularised update takes its plain update's threshold (measured: the same or lower). RMSprop's serial
# twin ran 1.1x-15x slower than its parallel one at every size from 1e3 (same run).
RMSPROP_PARALLEL_MIN = 1_000

_sgd_regularized_kernel = serial_and_parallel(_sgd_regularized, SGD_PARALLEL_MIN)
_momentum_regularized_kernel = serial_and_parallel(_momentum_regularized, MOMENTUM_PARALLEL_MIN)
_adam_regularized_kernel = serial_and_parallel(_adam_regularized, ADAM_PARALLEL_MIN)
_rmsprop_kernel = serial_and_parallel(_rmsprop, RMSPROP_PARALLEL_MIN)


def squared_norm(g, out) -> None:
    """out[0] = sum(g ** 2), accumulated in float64."""
    out[0] = _squared_norm(g)


def sgd_regularized_update(p, g, d, norm_sq, clip: float, lr: float, l2: float) -> None:
    """See ``reference.sgd_regularized_update``."""
    _sgd_regularized_kernel(p, g, d, norm_sq, clip, lr, l2)


def momentum_regularized_update(p, g, v, d, norm_sq, clip: float, lr: float, mu: float, l2: float,
                                nesterov: int) -> None:
    """See ``reference.momentum_regularized_update``."""
    _momentum_regularized_kernel(p, g, v, d, norm_sq, clip, lr, mu, l2, bool(nesterov), np.finfo(p.dtype).tiny)


def adam_regularized_update(p, g, m, v, d, norm_sq, clip: float, step_size: float, beta1: float, beta2: float,
                            eps: float, bc2_sqrt: float, l2: float, decay: float) -> None:
    """See ``reference.adam_regularized_update``."""
    _adam_regularized_kernel(p, g, m, v, d, norm_sq, clip, step_size, beta1, beta2, eps, bc2_sqrt, l2, decay,
                             np.finfo(p.dtype).tiny)


def rmsprop_update(p, g, sq, buf, avg, d, norm_sq, clip: float, lr: float, alpha: float, eps: float, l2: float,
                   mu: float, centered: int) -> None:
    """See ``reference.rmsprop_update``."""
    _rmsprop_kernel(p, g, sq, buf, avg, d, norm_sq, clip, lr, alpha, eps, l2, mu, bool(centered),
                    np.finfo(p.dtype).tiny)


@jit
def max_norm(w, limit: float) -> None:
    """Keras's MaxNorm on a (fan_in, units) matrix: column j scaled by min(norm, limit) / (norm + 1e-7). Row by
    row, in memory order: each column's squares are summed in float64 in row order as before, but every pass runs
    along a row (vectorised). Walking each column down its rows took 0.41 ms for 390 x 256 float32 weights against
    0.070 ms for the NumPy reference (2-core Intel Xeon VM, 2026-12-06, ``--sections kernels``)."""
    rows, units = w.shape
    totals = np.zeros(units)
    for r in range(rows):
        row = w[r]
        for j in range(units):
            totals[j] += row[j] * row[j]
    scales = np.empty(units, w.dtype)
    for j in range(units):
        norm = math.sqrt(totals[j])
        scales[j] = min(norm, limit) / (norm + 1e-7)
    for r in range(rows):
        row = w[r]
        for j in range(units):
            row[j] *= scales[j]
