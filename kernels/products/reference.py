"""Reference products: one matrix product each."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel
from . import check_product, check_weight_gradient


@kernel(check=check_product)
def product(a, b, out) -> None:
    """out (rows, F) = a @ b: a Dense or Conv2D layer's pre-activation from its input rows (rows, K) and weights
    (K, F), or dL/d(input rows) from dL/dz and the weights' transpose."""
    array_module(a).matmul(a, b, out=out)


@kernel(check=check_weight_gradient)
def weight_gradient(patches, dz, out) -> None:
    """out (K, F) = patches.T @ dz: a Dense or Conv2D layer's weight gradient from its input rows (rows, K) and
    dL/dz (rows, F)."""
    array_module(patches).matmul(patches.T, dz, out=out)
