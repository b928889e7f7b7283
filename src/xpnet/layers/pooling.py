"""MaxPool2D: the largest value of each window of a channels-last input, remembering where it was for backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, as_pair, register


@register
class MaxPool2D(Layer):
    """``MaxPool2D(pool_size=2, strides=None)`` ("valid": windows that fit); strides default to the pool size."""

    type_name = "maxpool2d"

    def __init__(self, pool_size: Any = 2, strides: Any = None, *, input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        self.pool_size = as_pair(pool_size, "MaxPool2D pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "MaxPool2D strides")

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ConfigError(f"MaxPool2D takes (height, width, channels) inputs, but its inputs have shape "
                              f"{input_shape} per sample")
        (h, w, c), (ph, pw), (sh, sw) = input_shape, self.pool_size, self.strides
        if ph > h or pw > w:
            raise ConfigError(f"the {ph}x{pw} pool is larger than the {h}x{w} input")
        return ((h - ph) // sh + 1, (w - pw) // sw + 1, c)

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        empty = self.backend.empty
        buffers = {"out": empty((rows, *self.output_shape)), "argmax": empty((rows, *self.output_shape), np.int32)}
        if backward and need_dx:
            buffers["dx"] = empty((rows, *self.input_shape))
        return Workspace(buffers, backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        self.backend.kernels.max_pool(x, *self.pool_size, *self.strides, ws.batch["out"], ws.batch["argmax"])
        return ws.batch["out"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        if not need_dx:
            return None
        self.backend.kernels.max_pool_backward(dy, ws.batch["argmax"], *self.pool_size, *self.strides, ws.batch["dx"])
        return ws.batch["dx"]

    def settings(self) -> dict[str, Any]:
        return {"pool_size": list(self.pool_size), "strides": list(self.strides)}

    def details(self) -> str:
        return f"{self.pool_size[0]}x{self.pool_size[1]}/{self.strides[0]}x{self.strides[1]}"
