"""Reference weight gradient: one matrix product."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel
from . import check_weight_gradient


@kernel(check=check_weight_gradient)
def weight_gradient(patches, dz, out) -> None:
    """out (K, F) = patches.T @ dz: a Dense or Conv2D layer's weight gradient from its input rows (rows, K) and
    dL/dz (rows, F)."""
    array_module(patches).matmul(patches.T, dz, out=out)
