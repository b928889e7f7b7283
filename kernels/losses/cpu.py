"""Numba CPU output losses: gradient, loss and correct count in one pass over the rows."""

from __future__ import annotations

from ..numba_cpu import jit
from ..scalar import binary_cross_entropy, cross_entropy_row, row_correct, smoothed_cross_entropy_row

_row_correct = jit(inline="always")(row_correct)
_binary_cross_entropy = jit(inline="always")(binary_cross_entropy)
_cross_entropy_row = jit(inline="always")(cross_entropy_row)


@jit
def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    n, m = z.shape
    inv_n = z.dtype.type(1.0 / n)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) * inv_n
        loss += _cross_entropy_row(z, a, y, i)
        correct += _row_correct(a, y, i)
    stats[0] += loss
    stats[1] += correct


@jit
def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    n, m = z.shape
    scale = z.dtype.type(1.0 / (n * m))
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) * scale
            loss += _binary_cross_entropy(z[i, j], a[i, j], y[i, j], one, zero)
        correct += _row_correct(a, y, i)
    stats[0] += loss / m
    stats[1] += correct


@jit
def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    n, m = a.shape
    scale = a.dtype.type(grad_scale)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            diff = a[i, j] - y[i, j]
            da[i, j] = scale * diff
            loss += diff * diff
        correct += _row_correct(a, y, i)
    stats[0] += loss_scale * loss
    stats[1] += correct


_smoothed_cross_entropy_row = jit(inline="always")(smoothed_cross_entropy_row)


@jit
def softmax_cross_entropy_smoothed(z, a, y, dz, stats, smoothing: float) -> None:
    """Softmax + cross-entropy against the target t = (1 - smoothing) * y + smoothing / m: dz = (a - t) / n."""
    n, m = z.shape
    t = z.dtype.type
    inv_n = t(1.0 / n)
    keep = t(1.0 - smoothing)
    uniform = t(smoothing / m)
    loss = 0.0
    correct = 0.0
    for i in range(n):
        for j in range(m):
            dz[i, j] = (a[i, j] - (keep * y[i, j] + uniform)) * inv_n
        loss += _smoothed_cross_entropy_row(z, a, y, i, keep, uniform)
        correct += _row_correct(a, y, i)
    stats[0] += loss
    stats[1] += correct
