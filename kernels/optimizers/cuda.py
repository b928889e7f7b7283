"""Numba CUDA optimizer updates, grid-strided over the flat buffers."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, void

from ..numba_cuda import array, cuda_kernel, require


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), t))
def _sgd(p, g, lr):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), t, t))
def _momentum(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        vi = mu * v[i] + g[i]
        v[i] = vi
        p[i] -= lr * vi


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), t, t, t, t, t, t, t))
def _adam(p, g, m, v, step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        gi = g[i]
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _sgd.launch(p.shape[0], (p, g), (lr,))


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _momentum.launch(p.shape[0], (p, g, v), (lr, mu))


def adam_update(
    p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float
) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    scalars = (step_size, beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, 1.0 / bc2_sqrt)
    _adam.launch(p.shape[0], (p, g, m, v), scalars)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(float64, 1)))
def _sgd_hyper(p, g, hyper):
    lr = p.dtype.type(hyper[0])
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(float64, 1), t))
def _momentum_hyper(p, g, v, hyper, mu):
    lr = p.dtype.type(hyper[0])
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        vi = mu * v[i] + g[i]
        v[i] = vi
        p[i] -= lr * vi


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(float64, 1), t, t, t, t, t))
def _adam_hyper(p, g, m, v, hyper, beta1, beta2, one_minus_beta1, one_minus_beta2, eps):
    # every thread computes the step's bias corrections from [lr, step] in float64, as Adam.update does on the host
    step = hyper[1]
    step_size = p.dtype.type(hyper[0] / (1.0 - float64(beta1) ** step))
    inv_bc2 = p.dtype.type(1.0 / math.sqrt(1.0 - float64(beta2) ** step))
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        gi = g[i]
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


def sgd_update_hyper(p, g, hyper) -> None:
    """``sgd_update`` with the learning rate in ``hyper[0]`` (float64 device array ``[lr, step]``)."""
    require("sgd_update_hyper", "hyper", hyper, np.float64)
    _sgd_hyper.launch(p.shape[0], (p, g), (), hyper)


def momentum_update_hyper(p, g, v, hyper, mu: float) -> None:
    """``momentum_update`` with the learning rate in ``hyper[0]``."""
    require("momentum_update_hyper", "hyper", hyper, np.float64)
    _momentum_hyper.launch(p.shape[0], (p, g, v), (mu,), hyper)


def adam_update_hyper(p, g, m, v, hyper, beta1: float, beta2: float, eps: float) -> None:
    """``adam_update`` with the learning rate and step in ``hyper`` (``[lr, step]``), bias corrections on the device."""
    require("adam_update_hyper", "hyper", hyper, np.float64)
    _adam_hyper.launch(p.shape[0], (p, g, m, v), (beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps), hyper)
