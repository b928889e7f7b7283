"""Reference count of NaN and infinite entries."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel
from . import check_count_nonfinite


@kernel(check=check_count_nonfinite)
def count_nonfinite(x, out) -> None:
    """out[0] = how many entries of ``x`` are NaN or infinite."""
    xp = array_module(x)
    out[0] = x.size - xp.count_nonzero(xp.isfinite(x))
