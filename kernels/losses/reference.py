"""Reference output losses: each writes the output gradient and adds (loss, correct count) to ``stats``."""

from __future__ import annotations

from types import ModuleType

from .. import array_module
from ..registry import kernel


def _correct(xp: ModuleType, a, y):
    """Per-sample correctness: threshold 0.5 for one output, else argmax agreement."""
    if a.shape[1] == 1:
        return ((a[:, 0] >= 0.5) == (y[:, 0] >= 0.5)).sum()
    return (a.argmax(axis=1) == y.argmax(axis=1)).sum()


@kernel()
def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    xp = array_module(z)
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    dz[...] = (a - y) / n
    stats[0] += -(y * log_probs).sum()
    stats[1] += _correct(xp, a, y)


@kernel()
def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    xp = array_module(z)
    n, m = z.shape
    dz[...] = (a - y) / (n * m)
    per_element = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    stats[0] += per_element.sum() / m
    stats[1] += _correct(xp, a, y)


@kernel()
def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    xp = array_module(a)
    diff = a - y
    da[...] = grad_scale * diff
    stats[0] += loss_scale * (diff * diff).sum()
    stats[1] += _correct(xp, a, y)


@kernel()
def softmax_cross_entropy_smoothed(z, a, y, dz, stats, smoothing: float) -> None:
    """``softmax_cross_entropy`` against the label-smoothed target t = (1 - smoothing) * y + smoothing / m (as
    PyTorch's ``cross_entropy(label_smoothing=)``): dz = (a - t) / n; the loss is the smoothed one, the correct
    count is against ``y``."""
    xp = array_module(z)
    n, m = z.shape
    target = (1 - smoothing) * y + smoothing / m
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    dz[...] = (a - target) / n
    stats[0] += -(target * log_probs).sum()
    stats[1] += _correct(xp, a, y)
