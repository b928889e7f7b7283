"""CUDA convolution kernels: the CUDA set's windows kernels around the products (CuPy's matmul), in turn; with a
max pool, the CUDA set's pooling kernels after (before, backward)."""

from __future__ import annotations

from ..pooling import cuda as pooling
from ..products import reference as products
from ..windows import cuda as windows
from . import convolve, convolve_backward, convolve_pooled, convolve_pooled_backward


def convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, out) -> None:
    """See ``reference.convolution``."""
    convolve(windows.im2col, products.product, x, weights, stride_h, stride_w, pad_top, pad_left, cols, out)


def convolution_backward(cols, dz, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dw,
                         dx) -> None:
    """See ``reference.convolution_backward``."""
    convolve_backward(products.weight_gradient, products.product, windows.col2im, cols, dz, weights, stride_h,
                      stride_w, pad_top, pad_left, dw, dx)


def pooled_convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, conv,
                       pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> None:
    """See ``reference.pooled_convolution``."""
    convolve_pooled(convolution, pooling.max_pool_activation, x, weights, stride_h, stride_w, pad_top, pad_left,
                    cols, conv, pool_h, pool_w, b, activation, alpha, z, a, d, argmax)


def pooled_convolution_backward(da, d, argmax, pool_h: int, pool_w: int, cols, weights, stride_h: int, stride_w: int,
                                pad_top: int, pad_left: int, conv, db, dw, dx) -> None:
    """See ``reference.pooled_convolution_backward``."""
    convolve_pooled_backward(pooling.max_pool_activation_backward, products.weight_gradient, convolution_backward,
                             da, d, argmax, pool_h, pool_w, cols, weights, stride_h, stride_w, pad_top, pad_left,
                             conv, db, dw, dx)
