"""Activation: an activation function as a layer of its own, so a convolution without one can be followed by
BatchNorm and then the nonlinearity (Conv2D -> BatchNorm -> Activation("relu")).

It runs the activation family's kernels on (rows, last axis) views of its buffers: ``bias_activation`` with a
zero bias, then ``activation_backward`` (softmax works over the last axis)."""

from __future__ import annotations

from typing import Any

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.kernels import ACTIVATIONS
from xpnet.layers.base import Layer, Phase, Workspace, register


@register
class Activation(Layer):
    """``Activation("relu", alpha=0.01)``: ``f(x)`` elementwise (softmax over the last axis); no parameters."""

    type_name = "activation"
    outside_kernels = "copies its input"

    def __init__(self, activation: str, alpha: float = 0.01, *, input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}")
        if not is_finite_number(alpha):
            raise ConfigError(f"Activation alpha (the leaky-ReLU slope) must be a finite number, got {alpha!r}")
        self.activation, self.alpha = activation, float(alpha)

    def bind(self, backend: Any, params: dict[str, Any], grads: dict[str, Any], state: dict[str, Any]) -> None:
        super().bind(backend, params, grads, state)
        # the kernels' bias: a constant zero, and a scratch for the bias gradient that nothing reads
        self.zero_bias = backend.zeros(self.input_shape[-1])
        self.scratch = backend.zeros(self.input_shape[-1])

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        shape = (rows, *self.input_shape)
        buffers = {"z": self.backend.empty(shape), "a": self.backend.empty(shape)}
        if backward and not self.fused_with_loss:
            buffers["d"] = self.backend.empty(shape)
        return Workspace(buffers, backward=backward)

    def _rows(self, x: Any) -> Any:
        """``x`` as (rows, last axis) rows (a view of the C-contiguous buffers)."""
        return x.reshape(-1, self.input_shape[-1])

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        """z = x (kept: a loss fused with this activation reads it), a = f(z), and f'(z) when backward needs it."""
        z, d = ws.batch["z"], ws.batch.get("d")
        self.backend.xp.copyto(z, x)
        self.backend.kernels.bias_activation(self._rows(z), self.zero_bias, ACTIVATIONS[self.activation], self.alpha,
                                             self._rows(ws.batch["a"]), None if d is None else self._rows(d))
        return ws.batch["a"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        """dL/dx from dL/da ``dy``, in place (a loss fused with this activation already gave dL/dx)."""
        if not need_dx:
            return None
        if not self.fused_with_loss:
            dz = self._rows(dy)
            self.backend.kernels.activation_backward(dz, self._rows(ws.batch["d"]), self._rows(ws.batch["a"]),
                                                     ACTIVATIONS[self.activation], dz, self.scratch)
        return dy

    def settings(self) -> dict[str, Any]:
        return {"activation": self.activation, "alpha": self.alpha}

    def details(self) -> str:
        return self.activation
