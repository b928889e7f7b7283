"""Plain array-module reference implementations of every fused kernel.

These run on NumPy or CuPy alike (the module is taken from the array's type) and define what the fused kernels
must compute. They favour clarity over speed; tests hold the fused kernels equal to them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH


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
