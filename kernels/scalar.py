"""Per-element and per-row helpers written once and compiled twice: inlined into the CPU kernels, and as CUDA
device functions into the GPU kernels, so both devices compute each activation and each verdict identically."""

from __future__ import annotations

import math

from . import LEAKY_RELU, RELU, SIGMOID, TANH


def activate(kind, v, alpha, one, zero):
    """f(v) and f'(v) for an elementwise activation (``one``/``zero`` carry the dtype)."""
    if kind == SIGMOID:  # branch-free and stable: exp(-|v|) never overflows
        e = math.exp(-abs(v))
        s = (one if v >= zero else e) / (one + e)
        return s, s * (one - s)
    if kind == TANH:
        t = math.tanh(v)
        return t, one - t * t
    if kind == RELU:
        if v > zero:
            return v, one
        return zero, zero
    if kind == LEAKY_RELU:
        if v > zero:
            return v, one
        return alpha * v, alpha
    return v, one


def row_correct(a, y, i):
    """1.0 if sample i is classified right (threshold 0.5 for one output, else argmax agreement), else 0.0."""
    m = a.shape[1]
    if m == 1:
        return 1.0 if (a[i, 0] >= 0.5) == (y[i, 0] >= 0.5) else 0.0
    ka = 0
    ky = 0
    for j in range(1, m):
        if a[i, j] > a[i, ka]:
            ka = j
        if y[i, j] > y[i, ky]:
            ky = j
    return 1.0 if ka == ky else 0.0


def binary_cross_entropy(v, a, y, one, zero):
    """max(v, 0) - v y + log(1 + exp(-|v|)), the stable BCE of logit ``v``, with one logarithm: given the
    sigmoid output ``a``, log(1 + exp(-|v|)) = -log(a) for v >= 0 and -log(1 - a) below, and neither side
    is ever below one half."""
    kept = a if v >= zero else one - a
    return (v if v > zero else zero) - v * y - math.log(kept)


def cross_entropy_row(z, a, y, i):
    """-sum_j y[i, j] log softmax(z[i])_j, given the softmax output ``a``. The log-sum-exp is recovered from
    the largest probability, which is at least 1/m and so never underflows: one logarithm per row."""
    m = z.shape[1]
    k = 0
    for j in range(1, m):
        if a[i, j] > a[i, k]:
            k = j
    lse = z[i, k] - math.log(a[i, k])
    row = 0.0
    for j in range(m):
        if y[i, j] != 0:
            row += y[i, j] * (lse - z[i, j])
    return row
