"""Reference hue and hue histograms: plain ``xp`` code (NumPy or CuPy), the definition of the fused versions."""

from __future__ import annotations

from typing import Any

from .. import array_module
from ..registry import kernel
from . import DEFAULT_BINS, check_hue_histograms


def hue_reference(images: Any) -> Any:
    """Hue in [0, 1) of every pixel, shape (n, h, w), float64: ``skimage.color.rgb2hsv(images)[..., 0]``."""
    xp = array_module(images)
    arr = images.astype(xp.float64) * (1.0 / 255.0)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    v = arr.max(axis=-1)
    delta = v - arr.min(axis=-1)
    gray = delta == 0.0
    safe = xp.where(gray, 1.0, delta)  # grays get hue 0 below; this only avoids 0/0 warnings
    # Later rules win on ties, as in rgb2hsv: blue over green over red.
    hue = xp.where(b == v, 4.0 + (r - g) / safe, xp.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    hue = (hue / 6.0) % 1.0
    return xp.where(gray, 0.0, hue)


@kernel(check=check_hue_histograms)
def hue_histograms(images: Any, bins: int = DEFAULT_BINS) -> Any:
    """Pixel counts per hue bin for each image: float64 (n, bins), on the images' array module."""
    xp = array_module(images)
    n = images.shape[0]
    hue = hue_reference(images)
    step = 1.0 / bins
    index = xp.minimum((hue * bins).astype(xp.int64), bins - 1)  # first guess, off by one at most
    index -= (hue < index * step).astype(xp.int64)
    index += ((hue >= (index + 1) * step) & (index != bins - 1)).astype(xp.int64)
    index += (xp.arange(n, dtype=xp.int64) * bins)[:, None, None]
    return xp.bincount(index.ravel(), minlength=n * bins).reshape(n, bins).astype(xp.float64)
