"""Per-element and per-row helpers written once and compiled twice: inlined into the CPU kernels, and as CUDA
device functions into the GPU kernels, so both devices compute each activation and each verdict identically."""

from __future__ import annotations

import math
import types

import numpy as np

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


def smoothed_cross_entropy_row(z, a, y, i, keep, uniform):
    """``cross_entropy_row`` against the label-smoothed target keep * y + uniform (keep = 1 - smoothing,
    uniform = smoothing / m), PyTorch's ``cross_entropy(label_smoothing=)``."""
    m = z.shape[1]
    k = 0
    for j in range(1, m):
        if a[i, j] > a[i, k]:
            k = j
    lse = z[i, k] - math.log(a[i, k])
    row = 0.0
    for j in range(m):
        row += (keep * y[i, j] + uniform) * (lse - z[i, j])
    return row


# --- one element of each fused optimizer update: the CPU and CUDA kernels loop over these -------------------------
# In place at index i; ``g`` is the gradient the update uses (clipped and with its L2 term already added), ``pi``
# the parameter before the update (decayed first by AdamW). Scalars arrive in the arrays' dtype; ``tiny`` is that
# dtype's smallest normal number (``normal_or_zero``).


def normal_or_zero(x, tiny):
    """``x``, or zero when ``|x| < tiny``: a moment that decays towards zero (a weight whose gradient stays zero,
    such as one from an always-blank pixel) stops there instead of going subnormal. x86 cores compute with
    subnormal numbers tens of times slower (Adam's update over MNIST's MLP took 2.6x its time from the second epoch
    on), and a subnormal moment moves no parameter: its step is below 1e-30. NaN and infinity stay."""
    if abs(x) < tiny:
        return x - x
    return x


def clip_scale(norm_sq, clip):
    """min(1, clip / (sqrt(norm_sq[0]) + 1e-6)), PyTorch's ``clip_grad_norm_`` factor from the squared global norm
    in the float64 device scalar ``norm_sq``; 1 when ``clip`` <= 0. (No min(): CUDA device code refuses it.)"""
    scale = 1.0
    if clip > 0:
        scale = clip / (math.sqrt(norm_sq[0]) + 1e-6)
        if scale > 1.0:
            scale = 1.0
    return scale


def regularized_gradient(p, g, d, i, s, l2):
    """s * g[i] + l2 * d[i] * p[i]: the clipped gradient plus the L2 term of a decaying (d = 1) parameter."""
    return s * g[i] + l2 * d[i] * p[i]


def momentum_at(p, v, i, g, lr, mu, nesterov, tiny):
    """SGD with momentum as PyTorch writes it: v = mu v + g; p -= lr v, or lr (g + mu v) with Nesterov."""
    vi = normal_or_zero(mu * v[i] + g, tiny)
    v[i] = vi
    if nesterov:
        p[i] -= lr * (g + mu * vi)
    else:
        p[i] -= lr * vi


def adam_at(p, m, v, i, pi, g, step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2, tiny):
    """Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p = pi - step_size m / (sqrt(v) inv_bc2 + eps), with
    step_size = lr / (1 - b1^t) and inv_bc2 = 1 / sqrt(1 - b2^t) (see ``reference.adam_update``)."""
    mi = normal_or_zero(beta1 * m[i] + one_minus_beta1 * g, tiny)
    vi = normal_or_zero(beta2 * v[i] + one_minus_beta2 * g * g, tiny)
    m[i] = mi
    v[i] = vi
    p[i] = pi - step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


def rmsprop_at(p, sq, buf, avg, i, g, lr, alpha, one_minus_alpha, eps, mu, centered, tiny):
    """PyTorch's RMSprop: sq = a sq + (1 - a) g^2; centred, avg = a avg + (1 - a) g and the denominator
    sqrt(sq - avg^2) + eps, else sqrt(sq) + eps; with momentum mu > 0, buf = mu buf + g / den and p -= lr buf,
    else p -= lr g / den (``buf`` and ``avg`` are only touched when used)."""
    si = normal_or_zero(alpha * sq[i] + one_minus_alpha * g * g, tiny)
    sq[i] = si
    if centered:
        ai = normal_or_zero(alpha * avg[i] + one_minus_alpha * g, tiny)
        avg[i] = ai
        den = math.sqrt(si - ai * ai) + eps
    else:
        den = math.sqrt(si) + eps
    if mu > 0:
        bi = normal_or_zero(mu * buf[i] + g / den, tiny)
        buf[i] = bi
        p[i] -= lr * bi
    else:
        p[i] -= lr * g / den


# --- dropout's counter-based hash -----------------------------------------------------------------------------
# MurmurHash3 (x86, 32-bit) over the words (seed, step, flat index), on uint64 values that always hold 32 bits:
# every product is of two 32-bit numbers, so no step ever overflows 64 bits. That makes one definition exact
# everywhere: Numba's CPU and CUDA code, NumPy/CuPy uint64 arrays (the reference calls these very functions on
# arrays) and NumPy scalars (the CUDA simulator), which would warn on a wrapped multiplication. Every constant is
# a uint64, because Numba turns uint64 mixed with int64 into float64.

_MASK32 = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0xCC9E2D51)
_C2 = np.uint64(0x1B873593)
_F1 = np.uint64(0x85EBCA6B)
_F2 = np.uint64(0xC2B2AE35)
_ADD = np.uint64(0xE6546B64)
_FIVE = np.uint64(5)
_WORDS_BYTES = np.uint64(24)  # six 32-bit words hashed: seed, step and index, low and high halves each
_S8 = np.uint64(8)
_S13 = np.uint64(13)
_S15 = np.uint64(15)
_S16 = np.uint64(16)
_S17 = np.uint64(17)
_S19 = np.uint64(19)
_S32 = np.uint64(32)

DROPOUT_BITS = 24
"""u = (hash >> 8) / 2**24: the top 24 of the hash's 32 bits."""
_S24 = np.uint64(DROPOUT_BITS)


def murmur_round(h, word):
    """One MurmurHash3 body step: the 32-bit ``word`` mixed into the 32-bit state ``h`` (both uint64)."""
    k = (word * _C1) & _MASK32
    k = ((k << _S15) | (k >> _S17)) & _MASK32
    k = (k * _C2) & _MASK32
    h = h ^ k
    h = ((h << _S13) | (h >> _S19)) & _MASK32
    return (h * _FIVE + _ADD) & _MASK32


def murmur_finish(h):
    """MurmurHash3's final avalanche of the 32-bit state ``h`` (uint64)."""
    h = h ^ (h >> _S16)
    h = (h * _F1) & _MASK32
    h = h ^ (h >> _S13)
    h = (h * _F2) & _MASK32
    return h ^ (h >> _S16)


def dropout_key(seed, step):
    """The hash state after the words of ``seed`` and ``step`` (uint64 each): one per dropout call."""
    h = np.uint64(0)
    h = murmur_round(h, seed & _MASK32)
    h = murmur_round(h, seed >> _S32)
    h = murmur_round(h, step & _MASK32)
    return murmur_round(h, step >> _S32)


def dropout_draw(key, index):
    """24 random bits for the element at flat ``index`` (uint64) under ``key``: u = draw / 2**24 in [0, 1)."""
    h = murmur_round(key, index & _MASK32)
    h = murmur_round(h, index >> _S32)
    return murmur_finish(h ^ _WORDS_BYTES) >> _S8


def image_shift(key, index, span, largest):
    """A shift uniform in [-largest, largest] (int64) from the draw at ``index`` under ``key`` (uint64 each), for
    ``span = 2 * largest + 1`` (uint64): floor(u * span) - largest for u = draw / 2**24, computed in integers
    (draw * span < 2**55), so every device and array module gets it exactly, and always in range (u < 1)."""
    return np.int64((dropout_draw(key, index) * span) >> _S24) - largest


def pixel_hue_bin(r8, g8, b8, bins):
    """Hue bin of one uint8 pixel; compiled for the CPU and for CUDA from this one source."""
    scale = 1.0 / 255.0
    r = r8 * scale
    g = g8 * scale
    b = b8 * scale
    v = max(r, g, b)
    delta = v - min(r, g, b)
    if delta == 0.0:
        return 0
    if b == v:
        hue = 4.0 + (r - g) / delta
    elif g == v:
        hue = 2.0 + (b - r) / delta
    else:
        hue = (g - b) / delta
    hue = (hue / 6.0) % 1.0
    step = 1.0 / bins
    k = min(int(hue * bins), bins - 1)
    if hue < k * step:
        k -= 1
    elif k != bins - 1 and hue >= (k + 1) * step:
        k += 1
    return k


def with_helpers(func, **helpers):
    """A copy of ``func`` that calls the compiled ``helpers`` (by name) instead of the plain functions here: how
    ``dropout_draw`` and the optimizers' updates are compiled for the CPU and for CUDA, whose compilers cannot call
    plain Python."""
    return types.FunctionType(func.__code__, {**func.__globals__, **helpers}, func.__name__)


def call_key(seed: int, step: int) -> np.uint64:
    """The hash key of one call of a randomised kernel: ``dropout_key`` of (seed, step), each taken modulo 2**64."""
    return dropout_key(np.uint64(int(seed) % 2**64), np.uint64(int(step) % 2**64))


def dropout_constants(seed: int, step: int, rate: float, dtype) -> tuple:
    """Host-side values every dropout kernel takes: the key of (seed, step) (``call_key``), the smallest kept
    draw ``ceil(rate * 2**24)`` (so kept means u >= rate, exactly), and the kept elements' mask value
    ``1 / (1 - rate)`` in ``dtype``."""
    key = call_key(seed, step)
    threshold = np.uint64(math.ceil(rate * 2**DROPOUT_BITS))
    return key, threshold, np.dtype(dtype).type(1.0 / (1.0 - rate))


def shift_constants(seed: int, step: int, max_h: int, max_w: int) -> tuple:
    """Host-side values every random-shift kernel takes: the key of (seed, step) (``call_key``, as dropout's) and
    the spans ``2 * max + 1`` of the vertical and horizontal shifts (uint64)."""
    return call_key(seed, step), np.uint64(2 * max_h + 1), np.uint64(2 * max_w + 1)


def random_shifts(seed: int, step: int, count: int, max_h: int, max_w: int) -> tuple[np.ndarray, np.ndarray]:
    """The (down, right) shifts of ``count`` images under (seed, step), as int64 host arrays: image n's are
    ``image_shift`` of draws 2n (down, in [-max_h, max_h]) and 2n + 1 (right, in [-max_w, max_w]). Every
    random-shift kernel computes these, per image, from the same function."""
    key, span_h, span_w = shift_constants(seed, step, max_h, max_w)
    first = np.arange(count, dtype=np.uint64) * np.uint64(2)
    return image_shift(key, first, span_h, max_h), image_shift(key, first + np.uint64(1), span_w, max_w)
