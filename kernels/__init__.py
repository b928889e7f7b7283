"""Fused elementwise kernels, with a plain array-module reference beside every one.

Three interchangeable kernel sets share one set of function names and signatures (see ``sets.py``, where they
are classes: the reference set is the base and the fused sets override what they fuse):

- ``reference``: plain ``xp`` code (NumPy or CuPy); the definition of what each kernel must compute.
- ``cpu``: Numba ``njit`` kernels that fuse each step into one pass over memory.
- ``cuda``: Numba CUDA kernels, for CuPy arrays (loaded only on the GPU backend).

Every kernel writes into output arrays it is given and returns nothing, so callers can preallocate.
Losses accumulate ``stats[0] += sum of per-sample losses`` and ``stats[1] += number of correct samples``
so that a training loop never has to read a scalar back from the device on every step.

Convolutional kernels work on NHWC (channels-last) images: ``im2col`` / ``col2im`` lay every convolution
window out as a row, ``max_pool`` / ``max_pool_backward`` pool without padding, and batch normalisation works on
(rows, channels) matrices (an NHWC batch reshaped to (N*H*W, C)). ``dropout`` draws its mask from a
counter-based hash of (seed, step, flat index), so every kernel set gives the same mask bit for bit;
``random_shift`` / ``random_shift_backward`` translate each image by a shift hashed the same way from
(seed, step, sample) and back.
"""

from __future__ import annotations

import math

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5

ACTIVATIONS: dict[str, int] = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}

KERNEL_SETS = ("fused", "reference")

KERNEL_FUNCTIONS = (
    "bias_activation",
    "activation_backward",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "squared_error",
    "sgd_update",
    "momentum_update",
    "adam_update",
    "gather_rows",
    "im2col",
    "col2im",
    "max_pool",
    "max_pool_backward",
    "dropout",
    "dropout_backward",
    "random_shift",
    "random_shift_backward",
    "batch_norm_train",
    "batch_norm_eval",
    "batch_norm_backward",
)


def check_activation(activation: int) -> None:
    """Refuse an activation code that is not one of ``ACTIVATIONS``' values."""
    if activation not in _CODES:
        raise ValueError(f"unknown activation code {activation}; expected one of {sorted(_CODES)}")


_CODES = frozenset(ACTIVATIONS.values())


def check_windows(x_shape: tuple, cols_shape: tuple, stride_h: int, stride_w: int) -> None:
    """Refuse im2col/col2im shapes that disagree: x (N, H, W, C) and cols (N, OH, OW, KH, KW, C)."""
    if len(x_shape) != 4 or len(cols_shape) != 6:
        raise ValueError(f"im2col works on x (N, H, W, C) and cols (N, OH, OW, KH, KW, C), not {x_shape} "
                         f"and {cols_shape}")
    if x_shape[0] != cols_shape[0] or x_shape[3] != cols_shape[5]:
        raise ValueError(f"x {x_shape} and cols {cols_shape} disagree on the batch size or channel count")
    if stride_h < 1 or stride_w < 1:
        raise ValueError(f"strides must be at least 1, not ({stride_h}, {stride_w})")


def check_pool(x_shape: tuple, out_shape: tuple, pool_h: int, pool_w: int, stride_h: int, stride_w: int) -> None:
    """Refuse max-pool shapes where a window would reach past x (pooling has no padding)."""
    if len(x_shape) != 4 or len(out_shape) != 4:
        raise ValueError(f"max_pool works on x (N, H, W, C) and out (N, OH, OW, C), not {x_shape} and {out_shape}")
    n, h, w, c = x_shape
    n2, oh, ow, c2 = out_shape
    if n != n2 or c != c2:
        raise ValueError(f"x {x_shape} and out {out_shape} disagree on the batch size or channel count")
    if pool_h < 1 or pool_w < 1 or stride_h < 1 or stride_w < 1:
        raise ValueError(f"pool ({pool_h}, {pool_w}) and strides ({stride_h}, {stride_w}) must be at least 1")
    if (oh > 0 and (oh - 1) * stride_h + pool_h > h) or (ow > 0 and (ow - 1) * stride_w + pool_w > w):
        raise ValueError(f"a {oh}x{ow} output of {pool_h}x{pool_w} windows at strides ({stride_h}, {stride_w}) "
                         f"reaches past the {h}x{w} input")


def check_rate(rate: float) -> None:
    """Refuse a dropout rate outside [0, 1)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), not {rate}")


def check_shift(x, out, max_h: int, max_w: int) -> None:
    """Refuse random-shift arguments that cannot work: x and out must be distinct (N, H, W, C) arrays of one shape
    (a shifted image is read while it is written, so in place is impossible) and the largest shifts in [0, size)."""
    x_shape, out_shape = x.shape, out.shape
    if len(x_shape) != 4 or x_shape != out_shape:
        raise ValueError(f"random_shift works on x and out of one (N, H, W, C) shape, not {x_shape} and {out_shape}")
    if out is x:
        raise ValueError("random_shift cannot work in place: give an output array other than x")
    if not (0 <= max_h < x_shape[1] and 0 <= max_w < x_shape[2]):
        raise ValueError(f"random_shift: the largest shifts ({max_h}, {max_w}) must be at least 0 and smaller than "
                         f"the {x_shape[1]}x{x_shape[2]} images")


def as_rows(a):
    """``a`` as a (rows, last axis) matrix in C order (a 0-d array as 1 x 1): a view of a C-contiguous ``a``, a
    copy of any other (NumPy or CuPy). Element (r, k) is flat C-order element r * a.shape[-1] + k of ``a``."""
    return a.reshape((math.prod(a.shape[:-1]), a.shape[-1]) if a.ndim else (1, 1))
