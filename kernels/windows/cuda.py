"""Numba CUDA im2col / col2im: one thread per written element (col2im gathers, so no two threads write one
place)."""

from __future__ import annotations

from numba import cuda, int64, void

from ..numba_cuda import array, cuda_kernel


@cuda_kernel(lambda t: void(array(t, 4), array(t, 6), int64, int64, int64, int64))
def _im2col(x, cols, stride_h, stride_w, pad_top, pad_left):
    """One thread per cols element (channels fastest, so neighbours read and write neighbours)."""
    _, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    zero = cols.dtype.type(0.0)
    for k in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        q = r % kw
        r //= kw
        p = r % kh
        r //= kh
        j = r % ow
        r //= ow
        i = r % oh
        n = r // oh
        hh = i * stride_h + p - pad_top
        ww = j * stride_w + q - pad_left
        if hh >= 0 and hh < h_ and ww >= 0 and ww < w_:
            cols[n, i, j, p, q, c] = x[n, hh, ww, c]
        else:
            cols[n, i, j, p, q, c] = zero


@cuda_kernel(lambda t: void(array(t, 6), array(t, 4), int64, int64, int64, int64))
def _col2im(cols, dx, stride_h, stride_w, pad_top, pad_left):
    """One thread per dx element, gathering every cols entry that reads it: no two threads write one place."""
    _, h_, w_, c_ = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    for k in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        c = k % c_
        r = k // c_
        w = r % w_
        r //= w_
        h = r % h_
        n = r // h_
        s = dx.dtype.type(0.0)
        for p in range(kh):
            hi = h + pad_top - p
            if hi < 0:
                break
            i = hi // stride_h
            if i * stride_h != hi or i >= oh:
                continue
            for q in range(kw):
                wj = w + pad_left - q
                if wj < 0:
                    break
                j = wj // stride_w
                if j * stride_w == wj and j < ow:
                    s += cols[n, i, j, p, q, c]
        dx[n, h, w, c] = s


def im2col(x, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols) -> None:
    """cols[n, i, j, p, q, c] = x[n, i*stride_h + p - pad_top, j*stride_w + q - pad_left, c], zero outside x;
    x (N, H, W, C), cols (N, OH, OW, KH, KW, C) (see ``reference.im2col``)."""
    _im2col.launch(cols.size, (x, cols), (stride_h, stride_w, pad_top, pad_left))


def col2im(cols, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dx) -> None:
    """The adjoint of ``im2col``: dx (N, H, W, C) = the sum of every cols entry that im2col reads from it."""
    _col2im.launch(dx.size, (cols, dx), (stride_h, stride_w, pad_top, pad_left))
