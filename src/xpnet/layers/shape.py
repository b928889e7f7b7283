"""Flatten and Reshape: new views of the same values (no copy forward or backward)."""

from __future__ import annotations

import math
from typing import Any

from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, as_shape, register


class _View(Layer):
    """A layer whose output is its input, reshaped."""

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        return dy.reshape(dy.shape[0], *self.input_shape) if need_dx else None


@register
class Flatten(_View):
    """``Flatten()``: (H, W, C) per sample becomes H*W*C values, in C order (channels fastest)."""

    type_name = "flatten"

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)


@register
class Reshape(_View):
    """``Reshape((28, 28, 1))``: the same values per sample in a new shape (as many values as before)."""

    type_name = "reshape"

    def __init__(self, target_shape: Any, *, input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        self.target_shape = as_shape(target_shape, "Reshape target_shape")

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if math.prod(input_shape) != math.prod(self.target_shape):
            raise ConfigError(f"cannot reshape {input_shape} ({math.prod(input_shape)} values per sample) to "
                              f"{self.target_shape} ({math.prod(self.target_shape)} values)")
        return self.target_shape

    def settings(self) -> dict[str, Any]:
        return {"target_shape": list(self.target_shape)}
