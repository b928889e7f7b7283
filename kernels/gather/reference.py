"""Reference row gather: the rows of one shuffled batch."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel


@kernel()
def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    array_module(src).take(src, idx, axis=0, out=out)
