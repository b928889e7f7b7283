"""Pooling layers on channels-last inputs: MaxPool2D and AvgPool2D over windows that fit ("valid"), and
GlobalAvgPool2D, which averages each image to one value per channel."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, as_pair, register


def _pool_buffers(layer: Layer, rows: int, backward: bool, need_dx: bool) -> dict[str, Any]:
    """A pool's output, and its input gradient when a backward pass needs it."""
    buffers = {"out": layer.backend.empty((rows, *layer.output_shape))}
    if backward and need_dx:
        buffers["dx"] = layer.backend.empty((rows, *layer.input_shape))
    return buffers


def _check_images(layer: Layer, input_shape: Shape) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"{type(layer).__name__} takes (height, width, channels) inputs, but its inputs have shape "
                          f"{input_shape} per sample")


class WindowPool2D(Layer):
    """Base of the window pools: ``pool_size`` windows at ``strides`` (the pool size by default), no padding."""

    def __init__(self, pool_size: Any = 2, strides: Any = None, *, input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        kind = type(self).__name__
        self.pool_size = as_pair(pool_size, f"{kind} pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, f"{kind} strides")

    def output_shape_for(self, input_shape: Shape) -> Shape:
        _check_images(self, input_shape)
        (h, w, c), (ph, pw), (sh, sw) = input_shape, self.pool_size, self.strides
        if ph > h or pw > w:
            raise ConfigError(f"the {ph}x{pw} pool is larger than the {h}x{w} input")
        return ((h - ph) // sh + 1, (w - pw) // sw + 1, c)

    def settings(self) -> dict[str, Any]:
        return {"pool_size": list(self.pool_size), "strides": list(self.strides)}

    def details(self) -> str:
        return f"{self.pool_size[0]}x{self.pool_size[1]}/{self.strides[0]}x{self.strides[1]}"


@register
class MaxPool2D(WindowPool2D):
    """``MaxPool2D(pool_size=2, strides=None)``: the largest value of each window, remembering where it was for
    backward."""

    type_name = "maxpool2d"

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        buffers = _pool_buffers(self, rows, backward, need_dx)
        buffers["argmax"] = self.backend.empty((rows, *self.output_shape), np.int32)
        return Workspace(buffers, backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        self.backend.kernels.max_pool(x, *self.pool_size, *self.strides, ws.batch["out"], ws.batch["argmax"])
        return ws.batch["out"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        if not need_dx:
            return None
        self.backend.kernels.max_pool_backward(dy, ws.batch["argmax"], *self.pool_size, *self.strides, ws.batch["dx"])
        return ws.batch["dx"]


@register
class AvgPool2D(WindowPool2D):
    """``AvgPool2D(pool_size=2, strides=None)``: the mean of each window."""

    type_name = "avgpool2d"

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        return Workspace(_pool_buffers(self, rows, backward, need_dx), backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        self.backend.kernels.avg_pool(x, *self.pool_size, *self.strides, ws.batch["out"])
        return ws.batch["out"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        if not need_dx:
            return None
        self.backend.kernels.avg_pool_backward(dy, *self.pool_size, *self.strides, ws.batch["dx"])
        return ws.batch["dx"]


@register
class GlobalAvgPool2D(Layer):
    """``GlobalAvgPool2D()``: each (height, width, channels) input becomes its channels' means, (channels,)."""

    type_name = "globalavgpool2d"

    def output_shape_for(self, input_shape: Shape) -> Shape:
        _check_images(self, input_shape)
        return (input_shape[2],)

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        return Workspace(_pool_buffers(self, rows, backward, need_dx), backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        self.backend.kernels.global_avg_pool(x, ws.batch["out"])
        return ws.batch["out"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        if not need_dx:
            return None
        self.backend.kernels.global_avg_pool_backward(dy, ws.batch["dx"])
        return ws.batch["dx"]
