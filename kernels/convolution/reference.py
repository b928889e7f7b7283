"""Reference convolution kernels: the windows and products families' references in turn."""

from __future__ import annotations

from ..products import reference as products
from ..registry import kernel
from ..windows import reference as windows
from . import check_convolution, check_convolution_backward, convolve, convolve_backward


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
