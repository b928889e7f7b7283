"""Random regularisers drawn from a counter-based hash (see ``scalar.py``), so every kernel set draws the same:
``dropout`` (a mask per element) and ``random_shift`` (a translation per image), each with its backward."""

from __future__ import annotations


def check_rate(rate: float) -> None:
    """Refuse a dropout rate outside [0, 1)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), not {rate}")


def check_shift(x, out, max_h: int, max_w: int) -> None:
    """Refuse random-shift arguments that cannot work: x and out must be distinct (N, H, W, C) arrays of one shape
    (a shifted image is read while it is written, so in place is impossible) and the largest shifts in [0, size)."""
    x_shape, out_shape = x.shape, out.shape
    if len(x_shape) != 4 or x_shape != out_shape:
        raise ValueError(f"random_shift works on x and out of one (N, H, W, C) shape, not {x_shape} and {out_shape}")
    if out is x:
        raise ValueError("random_shift cannot work in place: give an output array other than x")
    if not (0 <= max_h < x_shape[1] and 0 <= max_w < x_shape[2]):
        raise ValueError(f"random_shift: the largest shifts ({max_h}, {max_w}) must be at least 0 and smaller than "
                         f"the {x_shape[1]}x{x_shape[2]} images")


def check_dropout(x, rate: float, seed: int, step: int, out, mask) -> None:
    """``check_rate`` for dropout's arguments."""
    check_rate(rate)


def check_random_shift(x, max_h: int, max_w: int, seed: int, step: int, out) -> None:
    """``check_shift`` for random_shift's arguments."""
    check_shift(x, out, max_h, max_w)


def check_random_shift_backward(dout, max_h: int, max_w: int, seed: int, step: int, dx) -> None:
    """``check_shift`` for random_shift_backward's arguments."""
    check_shift(dout, dx, max_h, max_w)
