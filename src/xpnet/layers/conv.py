"""Conv2D: a 2-D convolution over channels-last (NHWC) inputs, as im2col patch rows through the Dense machinery.

Forward: ``im2col`` copies each output position's receptive field into one row of ``cols`` (rows x KH*KW*C), a
product with ``W`` (KH*KW*C x filters) gives every position's pre-activation, and the fused bias + activation kernel
finishes. Backward: dL/dz in place, ``dW = cols.T @ dz``, ``db`` summed on the way; the patch gradients
``dz @ W.T`` overwrite ``cols`` (no longer needed) and ``col2im`` adds them back into the input's shape.

``max_pool`` makes the layer Conv2D followed by MaxPool2D (windows of that size, as many apart), computed with the
pool first: a bias added per channel and an activation that never decreases both keep each window's largest
element the largest, so ``f(max(z) + b) == max(f(z + b))``, and the bias + activation and its backward run on a
quarter of the values (2x2 windows) instead of all of them, inside the pool's kernels (``max_pool_activation``:
each window's max, bias and activation while the window is in cache; ``max_pool_activation_backward``: dL/dz =
dL/da * f'(z) computed where each window's largest element receives it). Backward scatters dL/dz of each window's
largest element into the product's output buffer, which then holds the full dL/dz. Both passes are one kernel each
(``pooled_convolution`` and its backward): on the CPU each block of images is convolved and pooled, or given its
dL/dz and taken back through the convolution, by one thread while its rows are in that core's cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xpnet.errors import ConfigError
from xpnet.layers.affine import AffineLayer
from xpnet.layers.base import Phase, Shape, Workspace, as_pair, register

PADDINGS = ("valid", "same")
NEVER_DECREASING = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
"""The activations with f(max(z)) == max(f(z)) (leaky ReLU when its slope alpha is not negative)."""


def window_output(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading (top or left) padding along one axis, as Keras/TensorFlow define them."""
    if padding == "same":
        out = math.ceil(size / stride)
        return out, max((out - 1) * stride + window - size, 0) // 2
    return (size - window) // stride + 1, 0


@register
class Conv2D(AffineLayer):
    """``Conv2D(filters, kernel_size, strides=1, padding="valid"|"same", activation=..., max_pool=None)`` on
    (H, W, C) inputs; ``max_pool=2`` adds a 2x2 max-pool (as ``MaxPool2D(2)`` after it), computed before the
    activation."""

    type_name = "conv2d"

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 activation: str = "identity", max_pool: Any = None, **options: Any) -> None:
        super().__init__(filters, activation, **options)
        self.kernel_size = as_pair(kernel_size, "Conv2D kernel_size")
        self.strides = as_pair(strides, "Conv2D strides")
        if padding not in PADDINGS:
            raise ConfigError(f"Conv2D padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
        self.padding = padding
        self.max_pool = None if max_pool is None else as_pair(max_pool, "Conv2D max_pool")
        decreasing = self.activation not in NEVER_DECREASING or (self.activation == "leaky_relu" and self.alpha < 0)
        if self.max_pool is not None and decreasing:
            what = f"leaky_relu with alpha {self.alpha}" if self.activation == "leaky_relu" else self.activation
            raise ConfigError(
                f"Conv2D max_pool pools before the activation, which equals pooling after it only for an activation "
                f"that never decreases ({', '.join(NEVER_DECREASING)}, leaky_relu with alpha >= 0), not {what}; "
                "put a MaxPool2D layer after the Conv2D instead"
            )
        self.pads = (0, 0)
        self.conv_shape: Shape | None = None
        """The convolution's output shape per sample, before the max-pool."""

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
        self.conv_shape = (oh, ow, self.units)
        if self.max_pool is None:
            return self.conv_shape
        ph, pw = self.max_pool
        if ph > oh or pw > ow:
            raise ConfigError(f"the {ph}x{pw} max_pool is larger than the convolution's {oh}x{ow} output")
        return (oh // ph, ow // pw, self.units)

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        """z, a (and f'(z)) of the layer's output; with ``max_pool``, the product's own output ``conv`` (later
        dL/dz) and each window's ``argmax``."""
        oh, ow, _ = self.conv_shape
        buffers = self.affine_buffers((rows, *self.output_shape), backward)
        buffers["cols"] = self.backend.empty((rows, oh, ow, *self.kernel_size, self.input_shape[2]))
        if self.max_pool is not None:
            buffers["conv"] = self.backend.empty((rows, *self.conv_shape))
            buffers["argmax"] = self.backend.empty((rows, *self.output_shape), np.int32)
        if backward and need_dx:
            buffers["dx"] = self.backend.empty((rows, *self.input_shape))
        return Workspace(buffers, backward=backward)

    def _patches(self, ws: Workspace) -> Any:
        return ws.batch["cols"].reshape(-1, self.fan_in)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        kernels, batch = self.backend.kernels, ws.batch
        if self.max_pool is None:
            kernels.convolution(x, self.params["W"], *self.strides, *self.pads, batch["cols"],
                                self._rows(batch["z"]))
            return self.activate(ws)
        kernels.pooled_convolution(x, self.params["W"], *self.strides, *self.pads, batch["cols"], batch["conv"],
                                   *self.max_pool, self.params["b"], self.code, self.alpha, batch["z"], batch["a"],
                                   batch.get("d"), batch["argmax"])
        return batch["a"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        kernels, batch = self.backend.kernels, ws.batch
        if self.max_pool is not None:  # never the output layer (a loss takes flat outputs): ws has d
            kernels.pooled_convolution_backward(dy, batch["d"], batch["argmax"], *self.max_pool, batch["cols"],
                                                self.params["W"], *self.strides, *self.pads, batch["conv"],
                                                self.grads["b"], self.grads["W"], batch["dx"] if need_dx else None)
            return batch["dx"] if need_dx else None
        dz = self.deactivate(dy, ws)
        if not need_dx:
            kernels.weight_gradient(self._patches(ws), dz, self.grads["W"])
            return None
        kernels.convolution_backward(ws.batch["cols"], dz, self.params["W"], *self.strides, *self.pads,
                                     self.grads["W"], ws.batch["dx"])
        return ws.batch["dx"]

    def settings(self) -> dict[str, Any]:
        return {"filters": self.units, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "max_pool": None if self.max_pool is None else list(self.max_pool),
                **super().settings()}

    def details(self) -> str:
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        pool = "" if self.max_pool is None else f", max-pool {self.max_pool[0]}x{self.max_pool[1]}"
        return f"{kh}x{kw}/{sh}x{sw} {self.padding}, {self.activation}{pool}"
