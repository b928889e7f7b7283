"""Numba CPU optimizer updates: one pass over the flat buffers (parallel for very large ones)."""

from __future__ import annotations

import math

from numba import prange

from ..numba_cpu import serial_and_parallel


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
