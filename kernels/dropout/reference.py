"""Reference dropout and random shifts, both drawn from a counter-based hash of (seed, step, index)."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel
from ..scalar import dropout_constants, dropout_draw, random_shifts
from . import check_dropout, check_random_shift, check_random_shift_backward


@kernel(check=check_dropout)
def dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """mask = 1 / (1 - rate) where u >= rate, else 0; out = x * mask. u in [0, 1) is a hash of (seed, step, the
    element's flat C-order index): see ``scalar.dropout_draw``; the same (seed, step) give the same mask."""
    xp = array_module(x)
    key, threshold, scale = dropout_constants(seed, step, rate, x.dtype)
    index = xp.arange(x.size, dtype=xp.uint64).reshape(x.shape)
    kept = dropout_draw(key, index) >= threshold
    m = xp.where(kept, scale, x.dtype.type(0))
    out[...] = x * m
    mask[...] = m


@kernel()
def dropout_backward(dout, mask, dx) -> None:
    """dx = dout * mask (dx may be dout)."""
    dx[...] = dout * mask


def _translate(x, down, right, out) -> None:
    """out[n, i, j] = x[n, i - down[n], j - right[n]], zero where that falls outside x (down, right: host int64)."""
    xp = array_module(x)
    n, h, w, _ = x.shape
    rows = xp.arange(h)[None, :] - xp.asarray(down)[:, None]  # (N, H): the source row of every output row
    cols = xp.arange(w)[None, :] - xp.asarray(right)[:, None]  # (N, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    source = x[xp.arange(n)[:, None, None], xp.clip(rows, 0, h - 1)[:, :, None], xp.clip(cols, 0, w - 1)[:, None, :]]
    out[...] = xp.where(inside[..., None], source, x.dtype.type(0))


def _shift(x, max_h: int, max_w: int, seed: int, step: int, out, sign: int) -> None:
    """Both directions: ``sign`` 1 translates every image by its shift, -1 back by it (the adjoint)."""
    down, right = random_shifts(seed, step, x.shape[0], max_h, max_w)
    _translate(x, sign * down, sign * right, out)


@kernel(check=check_random_shift)
def random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """out = every image of x (N, H, W, C) translated by its own (down, right) shift, uniform in [-max_h, max_h] x
    [-max_w, max_w] and hashed from (seed, step, image index) (see ``scalar.random_shifts``): out[n, i, j] =
    x[n, i - down, j - right], zero where that falls outside x. The same (seed, step) give the same shifts."""
    _shift(x, max_h, max_w, seed, step, out, 1)


@kernel(check=check_random_shift_backward)
def random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """The adjoint of ``random_shift`` with the same (seed, step): every image translated back by (-down,
    -right), zero where that falls outside."""
    _shift(dout, max_h, max_w, seed, step, dx, -1)
