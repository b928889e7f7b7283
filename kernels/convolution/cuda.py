"""CUDA convolution kernels: the CUDA set's windows kernels around the products (CuPy's matmul), in turn."""

from __future__ import annotations

from ..products import reference as products
from ..windows import cuda as windows
from . import convolve, convolve_backward


def convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, out) -> None:
    """See ``reference.convolution``."""
    convolve(windows.im2col, products.product, x, weights, stride_h, stride_w, pad_top, pad_left, cols, out)


def convolution_backward(cols, dz, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dw,
                         dx) -> None:
    """See ``reference.convolution_backward``."""
    convolve_backward(products.weight_gradient, products.product, windows.col2im, cols, dz, weights, stride_h,
                      stride_w, pad_top, pad_left, dw, dx)
