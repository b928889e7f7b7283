"""A convolution's products with its windows: ``convolution`` lays an NHWC batch's windows out as rows and multiplies
them by the weights; ``convolution_backward`` takes the weight gradient from those rows, multiplies dL/dz by the
weights' transpose into them, and adds them back into dL/dx. Each is the composition of the windows and products
families' kernels, in one pass over blocks of images on the CPU. ``pooled_convolution`` and its backward add a
Conv2D layer's ``max_pool`` to those passes: the pooling family's ``max_pool_activation`` after the convolution, and
its backward before the convolution's, in the same pass over each block of images on the CPU."""

from __future__ import annotations

from collections.abc import Callable

from ..pooling import check_max_pool_activation, check_max_pool_activation_backward
from ..products import check_product, check_weight_gradient
from ..windows import check_windows


def patch_rows(cols):
    """The windows (N, OH, OW, KH, KW, C) as the patch matrix (N * OH * OW, KH * KW * C)."""
    n_, oh, ow, kh, kw, c_ = cols.shape
    return cols.reshape(n_ * oh * ow, kh * kw * c_)


def conv_rows(conv):
    """The convolution's output (N, OH, OW, F) as the product's rows (N * OH * OW, F)."""
    return conv.reshape(-1, conv.shape[-1])


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


def check_pooled_convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, conv,
                             pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> None:
    """``check_max_pool_activation`` of conv (N, OH, OW, F) into z, a, d, argmax, and ``check_convolution`` into
    conv's rows."""
    check_max_pool_activation(conv, pool_h, pool_w, b, activation, alpha, z, a, d, argmax)
    check_convolution(x, weights, stride_h, stride_w, pad_top, pad_left, cols, conv_rows(conv))


def check_pooled_convolution_backward(da, d, argmax, pool_h: int, pool_w: int, cols, weights, stride_h: int,
                                      stride_w: int, pad_top: int, pad_left: int, conv, db, dw, dx) -> None:
    """``check_max_pool_activation_backward`` into conv (N, OH, OW, F), then ``check_convolution_backward`` from
    its rows (``check_weight_gradient`` where dx is None)."""
    check_max_pool_activation_backward(da, d, argmax, pool_h, pool_w, conv, db)
    if dx is None:
        check_weight_gradient(patch_rows(cols), conv_rows(conv), dw)
    else:
        check_convolution_backward(cols, conv_rows(conv), weights, stride_h, stride_w, pad_top, pad_left, dw, dx)


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


def convolve_pooled(convolution: Callable, max_pool_activation: Callable, x, weights, stride_h: int, stride_w: int,
                    pad_top: int, pad_left: int, cols, conv, pool_h: int, pool_w: int, b, activation: int,
                    alpha: float, z, a, d, argmax) -> None:
    """``pooled_convolution`` as a set's ``convolution`` and ``max_pool_activation`` in turn (as ``convolve``)."""
    convolution(x, weights, stride_h, stride_w, pad_top, pad_left, cols, conv_rows(conv))
    max_pool_activation(conv, pool_h, pool_w, b, activation, alpha, z, a, d, argmax)


def convolve_pooled_backward(max_pool_activation_backward: Callable, weight_gradient: Callable,
                             convolution_backward: Callable, da, d, argmax, pool_h: int, pool_w: int, cols, weights,
                             stride_h: int, stride_w: int, pad_top: int, pad_left: int, conv, db, dw, dx) -> None:
    """``pooled_convolution_backward`` as a set's ``max_pool_activation_backward`` into conv, then its
    ``convolution_backward`` from conv's rows (its ``weight_gradient`` where dx is None), as ``convolve``."""
    max_pool_activation_backward(da, d, argmax, pool_h, pool_w, conv, db)
    if dx is None:
        weight_gradient(patch_rows(cols), conv_rows(conv), dw)
    else:
        convolution_backward(cols, conv_rows(conv), weights, stride_h, stride_w, pad_top, pad_left, dw, dx)
