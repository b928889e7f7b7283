"""Reference bias + activation and its backward: plain ``xp`` code, the definition of both."""

from __future__ import annotations

from types import ModuleType

from .. import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH, array_module
from ..registry import kernel
from . import check_activation_backward, check_bias_activation, check_bias_gradient


def _sigmoid(xp: ModuleType, z):
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


@kernel(check=check_bias_activation)
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
    else:  # SOFTMAX, the one code left (codes are checked at the kernel set's boundary)
        e = xp.exp(z - z.max(axis=1, keepdims=True))
        a[...] = e / e.sum(axis=1, keepdims=True)
        return
    if d is not None:
        d[...] = grad


@kernel(check=check_activation_backward)
def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    if activation == SOFTMAX:
        dz[...] = a * (da - (da * a).sum(axis=1, keepdims=True))
    else:
        dz[...] = da * d
    db[...] = dz.sum(axis=0)


@kernel(check=check_bias_gradient)
def bias_gradient(dz, db) -> None:
    """db = column sums of dz: the bias gradient of a layer whose dL/dz a fused loss gave (one kernel call, so a
    recorded step replays it). The CUDA set keeps this version: one CuPy reduction, captured in the step's graph."""
    array_module(dz).sum(dz, axis=0, out=db)
