"""Reference im2col / col2im: every convolution window of an NHWC batch laid out as a row, and back."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel
from . import check_col2im, check_im2col, window_slices


def _padded_extent(size: int, out: int, kernel: int, stride: int, pad: int) -> int:
    """Rows (or columns) of a zero-padded input that ``out`` windows of ``kernel`` at ``stride`` can reach."""
    return max(size + pad, (out - 1) * stride + kernel) if out > 0 else size + pad


@kernel(check=check_im2col)
def im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """cols[n, i, j, p, q, c] = x[n, i*stride_h + p - pad_top, j*stride_w + q - pad_left, c], zero outside x.

    x is (N, H, W, C), cols (N, OH, OW, KH, KW, C): the window size and the output size come from cols' shape,
    and the bottom/right zero padding is whatever OH and OW imply.
    """
    xp = array_module(x)
    n, h, w, c = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    padded = xp.zeros((n, _padded_extent(h, oh, kh, stride_h, pad_top),
                       _padded_extent(w, ow, kw, stride_w, pad_left), c), dtype=x.dtype)
    padded[:, pad_top:pad_top + h, pad_left:pad_left + w, :] = x
    for p in range(kh):
        for q in range(kw):
            cols[:, :, :, p, q, :] = padded[window_slices(p, q, oh, ow, stride_h, stride_w)]


@kernel(check=check_col2im)
def col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """The adjoint of ``im2col``: dx (N, H, W, C) = the sum of every cols entry that im2col reads from it."""
    xp = array_module(cols)
    n, h, w, c = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    padded = xp.zeros((n, _padded_extent(h, oh, kh, stride_h, pad_top),
                       _padded_extent(w, ow, kw, stride_w, pad_left), c), dtype=dx.dtype)
    for p in range(kh):
        for q in range(kw):
            padded[window_slices(p, q, oh, ow, stride_h, stride_w)] += cols[:, :, :, p, q, :]
    dx[...] = padded[:, pad_top:pad_top + h, pad_left:pad_left + w, :]
