"""Convolution windows: ``im2col`` lays every window of an NHWC batch out as a row, ``col2im`` is its adjoint."""

from __future__ import annotations


def check_windows(x_shape: tuple, cols_shape: tuple, stride_h: int, stride_w: int) -> None:
    """Refuse im2col/col2im shapes that disagree: x (N, H, W, C) and cols (N, OH, OW, KH, KW, C)."""
    if len(x_shape) != 4 or len(cols_shape) != 6:
        raise ValueError(f"im2col works on x (N, H, W, C) and cols (N, OH, OW, KH, KW, C), not {x_shape} "
                         f"and {cols_shape}")
    if x_shape[0] != cols_shape[0] or x_shape[3] != cols_shape[5]:
        raise ValueError(f"x {x_shape} and cols {cols_shape} disagree on the batch size or channel count")
    if stride_h < 1 or stride_w < 1:
        raise ValueError(f"strides must be at least 1, not ({stride_h}, {stride_w})")


def check_im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """``check_windows`` for im2col's arguments."""
    check_windows(x.shape, cols.shape, stride_h, stride_w)


def check_col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """``check_windows`` for col2im's arguments."""
    check_windows(dx.shape, cols.shape, stride_h, stride_w)


def window_slices(p: int, q: int, oh: int, ow: int, stride_h: int, stride_w: int) -> tuple:
    """The positions of window element (p, q) in every output window, as slices of an (N, H, W, C) input."""
    return (slice(None), slice(p, p + (oh - 1) * stride_h + 1, stride_h),
            slice(q, q + (ow - 1) * stride_w + 1, stride_w), slice(None))
