"""Reference optimizer updates on flat parameter, gradient and moment buffers."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel


@kernel()
def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    p -= lr * g


@kernel()
def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    v *= mu
    v += g
    p -= lr * v


@kernel()
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
