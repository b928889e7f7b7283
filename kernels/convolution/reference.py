"""Reference convolution kernels: the windows, products and pooling families' references in turn."""

from __future__ import annotations

from ..pooling import reference as pooling
from ..products import reference as products
from ..registry import kernel
from ..windows import reference as windows
from . import (
    check_convolution,
    check_convolution_backward,
    check_pooled_convolution,
    check_pooled_convolution_backward,
    convolve,
    convolve_backward,
    convolve_pooled,
    convolve_pooled_backward,
)


@kernel(check=check_convolution)
def convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, out) -> None:
    """cols = x's windows (``im2col``), out (N * OH * OW, F) = cols as rows @ weights: a Conv2D layer's
    pre-activation. cols stays for the backward pass."""
    convolve(windows.im2col, products.product, x, weights, stride_h, stride_w, pad_top, pad_left, cols, out)


@kernel(check=check_convolution_backward)
def convolution_backward(cols, dz, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dw,
                         dx) -> None:
    """dw = cols as rows .T @ dz; then cols = dz @ weights.T (overwritten) and dx = ``col2im`` of it: a Conv2D
    layer's weight gradient and dL/dx from dL/dz."""
    convolve_backward(products.weight_gradient, products.product, windows.col2im, cols, dz, weights, stride_h,
                      stride_w, pad_top, pad_left, dw, dx)


@kernel(check=check_pooled_convolution)
def pooled_convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, conv,
                       pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> None:
    """A Conv2D layer with ``max_pool``, forward: ``convolution`` into conv (N, OH, OW, F), then
    ``max_pool_activation`` of conv into z, a, d (unless None) and argmax."""
    convolve_pooled(convolution, pooling.max_pool_activation, x, weights, stride_h, stride_w, pad_top, pad_left,
                    cols, conv, pool_h, pool_w, b, activation, alpha, z, a, d, argmax)


@kernel(check=check_pooled_convolution_backward)
def pooled_convolution_backward(da, d, argmax, pool_h: int, pool_w: int, cols, weights, stride_h: int, stride_w: int,
                                pad_top: int, pad_left: int, conv, db, dw, dx) -> None:
    """A Conv2D layer with ``max_pool``, backward: ``max_pool_activation_backward`` into conv (then dL/dz) and db,
    then ``convolution_backward`` from conv's rows into dw and dx (only the weight gradient where dx is None: a
    first layer)."""
    convolve_pooled_backward(pooling.max_pool_activation_backward, products.weight_gradient, convolution_backward,
                             da, d, argmax, pool_h, pool_w, cols, weights, stride_h, stride_w, pad_top, pad_left,
                             conv, db, dw, dx)
