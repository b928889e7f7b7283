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


@kernel()
def adam_update_hyper(p, g, m, v, hyper, beta1: float, beta2: float, eps: float) -> None:
    """``adam_update`` with the learning rate and step read from device memory: ``hyper`` is a float64 array
    ``[lr, step]`` (so a captured CUDA graph replays unchanged while they change); the bias corrections are
    computed from them here, as ``Adam.update`` computes them on the host."""
    xp = array_module(p)
    lr, step = hyper[0], hyper[1]
    step_size = (lr / (1 - beta1**step)).astype(p.dtype)
    bc2_sqrt = xp.sqrt(1 - beta2**step).astype(p.dtype)
    adam_update(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt)


@kernel()
def sgd_update_hyper(p, g, hyper) -> None:
    """``sgd_update`` with the learning rate read from ``hyper[0]`` (float64 ``[lr, step]`` in device memory)."""
    sgd_update(p, g, hyper[0].astype(p.dtype))


@kernel()
def momentum_update_hyper(p, g, v, hyper, mu: float) -> None:
    """``momentum_update`` with the learning rate read from ``hyper[0]`` (float64 ``[lr, step]``)."""
    momentum_update(p, g, v, hyper[0].astype(p.dtype), mu)
