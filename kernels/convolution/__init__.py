"""A convolution's products with its windows: ``convolution`` lays an NHWC batch's windows out as rows and multiplies
them by the weights; ``convolution_backward`` takes the weight gradient from those rows, multiplies dL/dz by the
weights' transpose into them, and adds them back into dL/dx. Each is the composition of the windows and products
families' kernels, in one pass over blocks of images on the CPU."""

from __future__ import annotations

from collections.abc import Callable

from ..products import check_product, check_weight_gradient
from ..windows import check_windows


def patch_rows(cols):
    """The windows (N, OH, OW, KH, KW, C) as the patch matrix (N * OH * OW, KH * KW * C)."""
    n_, oh, ow, kh, kw, c_ = cols.shape
    return cols.reshape(n_ * oh * ow, kh * kw * c_)


def check_convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, out) -> None:
    """Refuse shapes that disagree: x (N, H, W, C), cols (N, OH, OW, KH, KW, C), weights (KH * KW * C, F), out
    (N * OH * OW, F)."""
    check_windows(x.shape, cols.shape, stride_h, stride_w)
    check_product(patch_rows(cols), weights, out)


def check_convolution_backward(cols, dz, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dw,
                               dx) -> None:
    """Refuse shapes that disagree: cols (N, OH, OW, KH, KW, C), dz (N * OH * OW, F), weights and dw
    (KH * KW * C, F), dx (N, H, W, C)."""
    check_windows(dx.shape, cols.shape, stride_h, stride_w)
    patches = patch_rows(cols)
    check_weight_gradient(patches, dz, dw)
    check_product(dz, weights.T, patches)


def convolve(im2col: Callable, product: Callable, x, weights, stride_h: int, stride_w: int, pad_top: int,
             pad_left: int, cols, out) -> None:
    """``convolution`` as a set's ``im2col`` followed by its ``product``: the reference, the CUDA version, and the
    CPU version where the weights are too wide for its blocks."""
    im2col(x, stride_h, stride_w, pad_top, pad_left, cols)
    product(patch_rows(cols), weights, out)


def convolve_backward(weight_gradient: Callable, product: Callable, col2im: Callable, cols, dz, weights,
                      stride_h: int, stride_w: int, pad_top: int, pad_left: int, dw, dx) -> None:
    """``convolution_backward`` as a set's ``weight_gradient``, ``product`` and ``col2im`` in turn (as ``convolve``)."""
    patches = patch_rows(cols)
    weight_gradient(patches, dz, dw)
    product(dz, weights.T, patches)
    col2im(cols, stride_h, stride_w, pad_top, pad_left, dx)
