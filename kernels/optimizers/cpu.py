"""Numba CPU optimizer updates: one pass over the flat buffers (parallel for very large ones)."""

from __future__ import annotations

import math

from numba import prange

from ..numba_cpu import jit, serial_and_parallel


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


# Parallel from these sizes of the first argument (1 << 24: not faster up to 1e7,
# the largest size measured): measured by
# `python -m benchmarks.parallel_thresholds` at 2 threads, 2-core AMD EPYC VM, 2026-12-05, load average 5-7
# (shared with other jobs: two runs, the larger crossover of the two kept).
SGD_PARALLEL_MIN = 1 << 24
MOMENTUM_PARALLEL_MIN = 1 << 24
ADAM_PARALLEL_MIN = 10_000_000

_sgd_kernel = serial_and_parallel(_sgd, SGD_PARALLEL_MIN)


_momentum_kernel = serial_and_parallel(_momentum, MOMENTUM_PARALLEL_MIN)


_adam_kernel = serial_and_parallel(_adam, ADAM_PARALLEL_MIN)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _sgd_kernel(p, g, lr)


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _momentum_kernel(p, g, v, lr, mu)


def adam_update(p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    _adam_kernel(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt)


# --- regularised updates: decay mask d, global-norm clipping from the device scalar norm_sq ------------------------


def _clip_factor(norm_sq, clip):
    """min(1, clip / (sqrt(norm_sq[0]) + 1e-6)), or 1 when ``clip`` <= 0 (see ``reference._clip_scale``)."""
    if clip <= 0:
        return 1.0
    return min(1.0, clip / (math.sqrt(norm_sq[0]) + 1e-6))


_clip = jit(inline="always")(_clip_factor)


@jit
def _squared_norm(g):
    """One serial pass: a parallel sum's order would depend on the thread count (results must not)."""
    total = 0.0
    for i in range(g.shape[0]):
        total += g[i] * g[i]
    return total


def _sgd_regularized(p, g, d, norm_sq, clip, lr, l2):
    t = p.dtype.type
    s = t(_clip(norm_sq, clip))
    lr_t = t(lr)
    l2_t = t(l2)
    for i in prange(p.shape[0]):
        p[i] -= lr_t * (s * g[i] + l2_t * d[i] * p[i])


def _momentum_regularized(p, g, v, d, norm_sq, clip, lr, mu, l2, nesterov):
    t = p.dtype.type
    s = t(_clip(norm_sq, clip))
    lr_t = t(lr)
    mu_t = t(mu)
    l2_t = t(l2)
    for i in prange(p.shape[0]):
        gi = s * g[i] + l2_t * d[i] * p[i]
        vi = mu_t * v[i] + gi
        v[i] = vi
        p[i] -= lr_t * (gi + mu_t * vi) if nesterov else lr_t * vi


def _adam_regularized(p, g, m, v, d, norm_sq, clip, step_size, beta1, beta2, eps, bc2_sqrt, l2, decay):
    t = p.dtype.type
    s = t(_clip(norm_sq, clip))
    b1 = t(beta1)
    b2 = t(beta2)
    c1 = t(1.0 - beta1)
    c2 = t(1.0 - beta2)
    step = t(step_size)
    inv_bc2 = t(1.0 / bc2_sqrt)
    eps_t = t(eps)
    l2_t = t(l2)
    decay_t = t(decay)
    one = t(1.0)
    for i in prange(p.shape[0]):
        pi = p[i]
        gi = s * g[i] + l2_t * d[i] * pi
        pi *= one - decay_t * d[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - step * mi / (math.sqrt(vi) * inv_bc2 + eps_t)


def _rmsprop(p, g, sq, buf, avg, d, norm_sq, clip, lr, alpha, eps, l2, mu, centered):
    t = p.dtype.type
    s = t(_clip(norm_sq, clip))
    lr_t = t(lr)
    a = t(alpha)
    c = t(1.0 - alpha)
    eps_t = t(eps)
    l2_t = t(l2)
    mu_t = t(mu)
    for i in prange(p.shape[0]):
        gi = s * g[i] + l2_t * d[i] * p[i]
        si = a * sq[i] + c * gi * gi
        sq[i] = si
        if centered:
            ai = a * avg[i] + c * gi
            avg[i] = ai
            den = math.sqrt(si - ai * ai) + eps_t
        else:
            den = math.sqrt(si) + eps_t
        if mu > 0:
            bi = mu_t * buf[i] + gi / den
            buf[i] = bi
            p[i] -= lr_t * bi
        else:
            p[i] -= lr_t * gi / den


# Not calibrated yet: each regularised update takes its plain update's threshold.
RMSPROP_PARALLEL_MIN = ADAM_PARALLEL_MIN

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
    _momentum_regularized_kernel(p, g, v, d, norm_sq, clip, lr, mu, l2, bool(nesterov))


def adam_regularized_update(p, g, m, v, d, norm_sq, clip: float, step_size: float, beta1: float, beta2: float,
                            eps: float, bc2_sqrt: float, l2: float, decay: float) -> None:
    """See ``reference.adam_regularized_update``."""
    _adam_regularized_kernel(p, g, m, v, d, norm_sq, clip, step_size, beta1, beta2, eps, bc2_sqrt, l2, decay)


def rmsprop_update(p, g, sq, buf, avg, d, norm_sq, clip: float, lr: float, alpha: float, eps: float, l2: float,
                   mu: float, centered: int) -> None:
    """See ``reference.rmsprop_update``."""
    _rmsprop_kernel(p, g, sq, buf, avg, d, norm_sq, clip, lr, alpha, eps, l2, mu, bool(centered))


@jit
def max_norm(w, limit: float) -> None:
    """Keras's MaxNorm on a (fan_in, units) matrix: column j scaled by min(norm, limit) / (norm + 1e-7)."""
    rows, units = w.shape
    for j in range(units):
        total = 0.0
        for r in range(rows):
            total += w[r, j] * w[r, j]
        norm = math.sqrt(total)
        scale = w.dtype.type(min(norm, limit) / (norm + 1e-7))
        for r in range(rows):
            w[r, j] *= scale
