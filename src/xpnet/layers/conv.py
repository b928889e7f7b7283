"""Conv2D: a 2-D convolution over channels-last (NHWC) inputs, as im2col patch rows through the Dense machinery.

Forward: ``im2col`` copies each output position's receptive field into one row of ``cols`` (rows x KH*KW*C), a
product with ``W`` (KH*KW*C x filters) gives every position's pre-activation, and the fused bias + activation kernel
finishes. Backward: dL/dz in place, ``dW = cols.T @ dz``, ``db`` summed on the way; the patch gradients
``dz @ W.T`` overwrite ``cols`` (no longer needed) and ``col2im`` adds them back into the input's shape.
"""

from __future__ import annotations

import math
from typing import Any

from xpnet.errors import ConfigError
from xpnet.layers.affine import AffineLayer
from xpnet.layers.base import Phase, Shape, Workspace, as_pair, register

PADDINGS = ("valid", "same")


def window_output(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading (top or left) padding along one axis, as Keras/TensorFlow define them."""
    if padding == "same":
        out = math.ceil(size / stride)
        return out, max((out - 1) * stride + window - size, 0) // 2
    return (size - window) // stride + 1, 0


@register
class Conv2D(AffineLayer):
    """``Conv2D(filters, kernel_size, strides=1, padding="valid"|"same", activation=...)`` on (H, W, C) inputs."""

    type_name = "conv2d"

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 activation: str = "identity", **options: Any) -> None:
        super().__init__(filters, activation, **options)
        self.kernel_size = as_pair(kernel_size, "Conv2D kernel_size")
        self.strides = as_pair(strides, "Conv2D strides")
        if padding not in PADDINGS:
            raise ConfigError(f"Conv2D padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
        self.padding = padding
        self.pads = (0, 0)

    @property
    def filters(self) -> int:
        return self.units

    @property
    def fan_in(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1] * self.input_shape[2]

    @property
    def receptive_field(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1]

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ConfigError(
                f"Conv2D takes (height, width, channels) inputs, but its inputs have shape {input_shape} per "
                "sample; put a Reshape((height, width, channels)) before it"
            )
        (h, w, _), (kh, kw), (sh, sw) = input_shape, self.kernel_size, self.strides
        if self.padding == "valid" and (kh > h or kw > w):
            raise ConfigError(f"the {kh}x{kw} kernel is larger than the {h}x{w} input; use a smaller kernel_size "
                              "or padding='same'")
        (oh, top), (ow, left) = window_output(h, kh, sh, self.padding), window_output(w, kw, sw, self.padding)
        self.pads = (top, left)
        return (oh, ow, self.units)

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        oh, ow, _ = self.output_shape
        buffers = self.affine_buffers((rows, oh, ow, self.units), backward)
        buffers["cols"] = self.backend.empty((rows, oh, ow, *self.kernel_size, self.input_shape[2]))
        if backward and need_dx:
            buffers["dx"] = self.backend.empty((rows, *self.input_shape))
        return Workspace(buffers, backward=backward)

    def _patches(self, ws: Workspace) -> Any:
        return ws.batch["cols"].reshape(-1, self.fan_in)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        self.backend.kernels.im2col(x, *self.strides, *self.pads, ws.batch["cols"])
        return self.affine_forward(self._patches(ws), ws)

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        patches = self._patches(ws)
        dz = self.affine_backward(patches, dy, ws)
        if not need_dx:
            return None
        self.backend.kernels.product(dz, self.params["W"].T, patches)
        self.backend.kernels.col2im(ws.batch["cols"], *self.strides, *self.pads, ws.batch["dx"])
        return ws.batch["dx"]

    def settings(self) -> dict[str, Any]:
        return {"filters": self.units, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, **super().settings()}

    def details(self) -> str:
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return f"{kh}x{kw}/{sh}x{sw} {self.padding}, {self.activation}"
