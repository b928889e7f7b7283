"""Numba CUDA optimizer updates, grid-strided over the flat buffers."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, int32, void

from .. import scalar
from ..numba_cuda import THREADS_PER_BLOCK, array, cuda_kernel, require, row_reduce

_clip_scale = cuda.jit(device=True)(scalar.clip_scale)
_regularized_gradient = cuda.jit(device=True)(scalar.regularized_gradient)
_normal_or_zero = cuda.jit(device=True)(scalar.normal_or_zero)
_momentum_at, _adam_at, _rmsprop_at = (cuda.jit(device=True)(scalar.with_helpers(at, normal_or_zero=_normal_or_zero))
                                       for at in (scalar.momentum_at, scalar.adam_at, scalar.rmsprop_at))


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), t))
def _sgd(p, g, lr):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), t, t, t))
def _momentum(p, g, v, lr, mu, tiny):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        _momentum_at(p, v, i, g[i], lr, mu, False, tiny)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), t, t, t, t, t, t, t, t))
def _adam(p, g, m, v, step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2, tiny):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        _adam_at(p, m, v, i, p[i], g[i], step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2,
                 tiny)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _sgd.launch(p.shape[0], (p, g), (lr,))


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _momentum.launch(p.shape[0], (p, g, v), (lr, mu, np.finfo(p.dtype).tiny))


def adam_update(
    p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float
) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    scalars = (step_size, beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, 1.0 / bc2_sqrt, np.finfo(p.dtype).tiny)
    _adam.launch(p.shape[0], (p, g, m, v), scalars)


# --- regularised updates: decay mask d, global-norm clipping from the device scalar norm_sq ------------------------


@cuda_kernel(lambda t: void(array(t, 1), array(float64, 1)))
def _squared_norm(g, out):
    """Grid-strided partial sums, reduced in each block's shared memory; one float64 atomic add per block."""
    partial = cuda.shared.array((1, THREADS_PER_BLOCK), float64)
    total = 0.0
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        total += g[i] * g[i]
    total = row_reduce(partial, 0, cuda.threadIdx.x, total, False)
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(out, 0, total)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(float64, 1), t, t, t))
def _sgd_regularized(p, g, d, norm_sq, clip, lr, l2):
    s = p.dtype.type(_clip_scale(norm_sq, clip))
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * _regularized_gradient(p, g, d, i, s, l2)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(float64, 1), t, t, t, t,
                            int32, t))
def _momentum_regularized(p, g, v, d, norm_sq, clip, lr, mu, l2, nesterov, tiny):
    s = p.dtype.type(_clip_scale(norm_sq, clip))
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        _momentum_at(p, v, i, _regularized_gradient(p, g, d, i, s, l2), lr, mu, nesterov, tiny)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(float64, 1),
                            t, t, t, t, t, t, t, t, t, t, t))
def _adam_regularized(p, g, m, v, d, norm_sq, clip, step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps,
                      inv_bc2, l2, decay, tiny):
    s = p.dtype.type(_clip_scale(norm_sq, clip))
    one = p.dtype.type(1.0)
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        gi = _regularized_gradient(p, g, d, i, s, l2)
        _adam_at(p, m, v, i, p[i] * (one - decay * d[i]), gi, step_size, beta1, beta2, one_minus_beta1,
                 one_minus_beta2, eps, inv_bc2, tiny)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(t, 1),
                            array(float64, 1), t, t, t, t, t, t, t, int32, t))
def _rmsprop(p, g, sq, buf, avg, d, norm_sq, clip, lr, alpha, one_minus_alpha, eps, l2, mu, centered, tiny):
    s = p.dtype.type(_clip_scale(norm_sq, clip))
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        gi = _regularized_gradient(p, g, d, i, s, l2)
        _rmsprop_at(p, sq, buf, avg, i, gi, lr, alpha, one_minus_alpha, eps, mu, centered, tiny)


@cuda_kernel(lambda t: void(array(t, 2), t))
def _max_norm(w, limit):
    """One thread per unit (column)."""
    rows, units = w.shape
    for j in range(cuda.grid(1), units, cuda.gridsize(1)):
        total = w.dtype.type(0.0)
        for r in range(rows):
            total += w[r, j] * w[r, j]
        norm = math.sqrt(total)
        scale = (limit if norm > limit else norm) / (norm + w.dtype.type(1e-7))
        for r in range(rows):
            w[r, j] *= scale


def squared_norm(g, out) -> None:
    """out[0] = sum(g ** 2), accumulated in float64."""
    require("squared_norm", "out", out, np.float64)
    out[0] = 0.0
    _squared_norm.launch(g.shape[0], (g,), (), out)


def sgd_regularized_update(p, g, d, norm_sq, clip: float, lr: float, l2: float) -> None:
    """See ``reference.sgd_regularized_update``."""
    require("sgd_regularized_update", "norm_sq", norm_sq, np.float64)
    _sgd_regularized.launch(p.shape[0], (p, g, d), (clip, lr, l2), norm_sq)


def momentum_regularized_update(p, g, v, d, norm_sq, clip: float, lr: float, mu: float, l2: float,
                                nesterov: int) -> None:
    """See ``reference.momentum_regularized_update``."""
    require("momentum_regularized_update", "norm_sq", norm_sq, np.float64)
    scalars = (clip, lr, mu, l2, int(nesterov), np.finfo(p.dtype).tiny)
    _momentum_regularized.launch(p.shape[0], (p, g, v, d), scalars, norm_sq)


def adam_regularized_update(p, g, m, v, d, norm_sq, clip: float, step_size: float, beta1: float, beta2: float,
                            eps: float, bc2_sqrt: float, l2: float, decay: float) -> None:
    """See ``reference.adam_regularized_update``."""
    require("adam_regularized_update", "norm_sq", norm_sq, np.float64)
    scalars = (clip, step_size, beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, 1.0 / bc2_sqrt, l2, decay,
               np.finfo(p.dtype).tiny)
    _adam_regularized.launch(p.shape[0], (p, g, m, v, d), scalars, norm_sq)


def rmsprop_update(p, g, sq, buf, avg, d, norm_sq, clip: float, lr: float, alpha: float, eps: float, l2: float,
                   mu: float, centered: int) -> None:
    """See ``reference.rmsprop_update``."""
    require("rmsprop_update", "norm_sq", norm_sq, np.float64)
    scalars = (clip, lr, alpha, 1.0 - alpha, eps, l2, mu, int(centered), np.finfo(p.dtype).tiny)
    _rmsprop.launch(p.shape[0], (p, g, sq, buf, avg, d), scalars, norm_sq)


def max_norm(w, limit: float) -> None:
    """Keras's MaxNorm on a (fan_in, units) matrix: column j scaled by min(norm, limit) / (norm + 1e-7)."""
    _max_norm.launch(w.shape[1], (w,), (limit,))


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(float64, 1)))
def _sgd_hyper(p, g, hyper):
    lr = p.dtype.type(hyper[0])
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(float64, 1), t, t))
def _momentum_hyper(p, g, v, hyper, mu, tiny):
    lr = p.dtype.type(hyper[0])
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        _momentum_at(p, v, i, g[i], lr, mu, False, tiny)


@cuda_kernel(lambda t: void(array(t, 1), array(t, 1), array(t, 1), array(t, 1), array(float64, 1), t, t, t, t, t,
                            t))
def _adam_hyper(p, g, m, v, hyper, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, tiny):
    # every thread computes the step's bias corrections from [lr, step] in float64, as Adam.update does on the host
    step = hyper[1]
    step_size = p.dtype.type(hyper[0] / (1.0 - float64(beta1) ** step))
    inv_bc2 = p.dtype.type(1.0 / math.sqrt(1.0 - float64(beta2) ** step))
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        _adam_at(p, m, v, i, p[i], g[i], step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2,
                 tiny)


def sgd_update_hyper(p, g, hyper) -> None:
    """``sgd_update`` with the learning rate in ``hyper[0]`` (float64 device array ``[lr, step]``)."""
    require("sgd_update_hyper", "hyper", hyper, np.float64)
    _sgd_hyper.launch(p.shape[0], (p, g), (), hyper)


def momentum_update_hyper(p, g, v, hyper, mu: float) -> None:
    """``momentum_update`` with the learning rate in ``hyper[0]``."""
    require("momentum_update_hyper", "hyper", hyper, np.float64)
    _momentum_hyper.launch(p.shape[0], (p, g, v), (mu, np.finfo(p.dtype).tiny), hyper)


def adam_update_hyper(p, g, m, v, hyper, beta1: float, beta2: float, eps: float) -> None:
    """``adam_update`` with the learning rate and step in ``hyper`` (``[lr, step]``), bias corrections on the device."""
    require("adam_update_hyper", "hyper", hyper, np.float64)
    scalars = (beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, np.finfo(p.dtype).tiny)
    _adam_hyper.launch(p.shape[0], (p, g, m, v), scalars, hyper)
