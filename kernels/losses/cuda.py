"""Numba CUDA output losses: one thread per row (a row's maximum or argmax is needed); ``stats`` gets float64
atomics."""

from __future__ import annotations

import numpy as np
from numba import cuda, float64, void

from ..numba_cuda import array, cuda_kernel, require
from ..scalar import binary_cross_entropy, cross_entropy_row, row_correct, smoothed_cross_entropy_row

_row_correct = cuda.jit(device=True)(row_correct)
_binary_cross_entropy = cuda.jit(device=True)(binary_cross_entropy)
_cross_entropy_row = cuda.jit(device=True)(cross_entropy_row)
_smoothed_cross_entropy_row = cuda.jit(device=True)(smoothed_cross_entropy_row)


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(t, 2), array(float64, 1), t))
def _softmax_cross_entropy(z, a, y, dz, stats, n_t):
    """One thread per row: dz = (a - y) / n; loss -= sum(y * log_softmax(z)); correct count."""
    n, m = z.shape
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) / n_t
        loss += _cross_entropy_row(z, a, y, i)
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss)
        cuda.atomic.add(stats, 1, correct)


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(t, 2), array(float64, 1), t, t, t))
def _softmax_cross_entropy_smoothed(z, a, y, dz, stats, n_t, keep, uniform):
    """One thread per row: dz = (a - t) / n for the smoothed target t = keep * y + uniform; loss; correct count."""
    n, m = z.shape
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        for j in range(m):
            dz[i, j] = (a[i, j] - (keep * y[i, j] + uniform)) / n_t
        loss += _smoothed_cross_entropy_row(z, a, y, i, keep, uniform)
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss)
        cuda.atomic.add(stats, 1, correct)


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(t, 2), array(float64, 1), t))
def _sigmoid_binary_cross_entropy(z, a, y, dz, stats, nm_t):
    """One thread per row: dz = (a - y) / (n * m); loss += stable BCE averaged over outputs; correct count."""
    n, m = z.shape
    zero = z.dtype.type(0.0)
    one = z.dtype.type(1.0)
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        row = zero
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) / nm_t
            row += _binary_cross_entropy(z[i, j], a[i, j], y[i, j], one, zero)
        loss += row
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss / m)
        cuda.atomic.add(stats, 1, correct)


@cuda_kernel(lambda t: void(array(t, 2), array(t, 2), array(t, 2), array(float64, 1), t, t))
def _squared_error(a, y, da, stats, grad_scale, loss_scale):
    """One thread per row: da = grad_scale * (a - y); loss += loss_scale * sum (a - y)^2; correct count."""
    n, m = a.shape
    zero = a.dtype.type(0.0)
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        row = zero
        for j in range(m):
            diff = a[i, j] - y[i, j]
            da[i, j] = grad_scale * diff
            row += diff * diff
        loss += row
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss_scale * loss)
        cuda.atomic.add(stats, 1, correct)


def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    require("softmax_cross_entropy", "stats", stats, np.float64)
    _softmax_cross_entropy.launch(z.shape[0], (z, a, y, dz), (z.shape[0],), stats)


def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    require("sigmoid_binary_cross_entropy", "stats", stats, np.float64)
    _sigmoid_binary_cross_entropy.launch(z.shape[0], (z, a, y, dz), (z.size,), stats)


def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    require("squared_error", "stats", stats, np.float64)
    _squared_error.launch(a.shape[0], (a, y, da), (grad_scale, loss_scale), stats)


def softmax_cross_entropy_smoothed(z, a, y, dz, stats, smoothing: float) -> None:
    """Softmax + cross-entropy against the target t = (1 - smoothing) * y + smoothing / m: dz = (a - t) / n."""
    require("softmax_cross_entropy_smoothed", "stats", stats, np.float64)
    scalars = (z.shape[0], 1.0 - smoothing, smoothing / z.shape[1])
    _softmax_cross_entropy_smoothed.launch(z.shape[0], (z, a, y, dz), scalars, stats)
