"""Pooling of NHWC batches: max pooling (with the argmax its backward needs) and average pooling over windows
without padding, global average pooling of every image to one value per channel, and a max pool fused with the
bias + activation after it (Conv2D's ``max_pool``: side-by-side windows, an activation that never decreases)."""

from __future__ import annotations

from .. import SOFTMAX
from ..activations import check_activation


def check_pool(x_shape: tuple, out_shape: tuple, pool_h: int, pool_w: int, stride_h: int, stride_w: int) -> None:
    """Refuse pooling shapes where a window would reach past x (pooling has no padding)."""
    if len(x_shape) != 4 or len(out_shape) != 4:
        raise ValueError(f"pooling works on x (N, H, W, C) and out (N, OH, OW, C), not {x_shape} and {out_shape}")
    n, h, w, c = x_shape
    n2, oh, ow, c2 = out_shape
    if n != n2 or c != c2:
        raise ValueError(f"x {x_shape} and out {out_shape} disagree on the batch size or channel count")
    if pool_h < 1 or pool_w < 1 or stride_h < 1 or stride_w < 1:
        raise ValueError(f"pool ({pool_h}, {pool_w}) and strides ({stride_h}, {stride_w}) must be at least 1")
    if (oh > 0 and (oh - 1) * stride_h + pool_h > h) or (ow > 0 and (ow - 1) * stride_w + pool_w > w):
        raise ValueError(f"a {oh}x{ow} output of {pool_h}x{pool_w} windows at strides ({stride_h}, {stride_w}) "
                         f"reaches past the {h}x{w} input")


def check_max_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out, argmax) -> None:
    """``check_pool`` for max_pool's arguments."""
    check_pool(x.shape, out.shape, pool_h, pool_w, stride_h, stride_w)


def check_max_pool_backward(dout, argmax, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """``check_pool`` for max_pool_backward's arguments."""
    check_pool(dx.shape, dout.shape, pool_h, pool_w, stride_h, stride_w)


def check_pooled_activation(activation: int) -> None:
    """Refuse softmax (or an unknown code): the fused pool + activation kernels apply an elementwise activation."""
    check_activation(activation)
    if activation == SOFTMAX:
        raise ValueError("the fused max pool + activation kernels take an elementwise activation, not softmax")


def check_max_pool_activation(x, pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d,
                              argmax) -> None:
    """``check_pool`` (windows as many apart as their size) and ``check_pooled_activation``."""
    check_pool(x.shape, z.shape, pool_h, pool_w, pool_h, pool_w)
    check_pooled_activation(activation)


def check_max_pool_activation_backward(da, d, argmax, pool_h: int, pool_w: int, dx, db) -> None:
    """``check_pool`` for the backward's dL/da and dx (windows as many apart as their size)."""
    check_pool(dx.shape, da.shape, pool_h, pool_w, pool_h, pool_w)


def check_avg_pool(x, pool_h: int, pool_w: int, stride_h: int, stride_w: int, out) -> None:
    """``check_pool`` for avg_pool's arguments."""
    check_pool(x.shape, out.shape, pool_h, pool_w, stride_h, stride_w)


def check_avg_pool_backward(dout, pool_h: int, pool_w: int, stride_h: int, stride_w: int, dx) -> None:
    """``check_pool`` for avg_pool_backward's arguments."""
    check_pool(dx.shape, dout.shape, pool_h, pool_w, stride_h, stride_w)


def _check_global(images_shape: tuple, channels_shape: tuple) -> None:
    if len(images_shape) != 4 or channels_shape != (images_shape[0], images_shape[3]):
        raise ValueError(f"global pooling works on images (N, H, W, C) and channels (N, C), not {images_shape} and "
                         f"{channels_shape}")


def check_global_avg_pool(x, out) -> None:
    """Refuse x that is not (N, H, W, C) or out that is not (N, C)."""
    _check_global(x.shape, out.shape)


def check_global_avg_pool_backward(dout, dx) -> None:
    """Refuse dx that is not (N, H, W, C) or dout that is not (N, C)."""
    _check_global(dx.shape, dout.shape)
