"""Dense: a fully connected layer ``a = f(x @ W + b)`` on flat inputs."""

from __future__ import annotations

from typing import Any

from xpnet.errors import ConfigError
from xpnet.layers.affine import AffineLayer
from xpnet.layers.base import Phase, Shape, Workspace, register


@register
class Dense(AffineLayer):
    """``Dense(units, activation)``, Keras-style; ``input_dim`` fixes the input size of a first layer.

    ``init`` names an initialiser (default: He for rectifiers, Glorot otherwise); ``alpha`` is the leaky-ReLU slope.
    """

    type_name = "dense"

    def __init__(self, units: int, activation: str = "identity", *, input_dim: int | None = None,
                 input_shape: Any = None, **options: Any) -> None:
        if input_dim is not None and input_shape is not None:
            raise ConfigError("give Dense input_dim or input_shape, not both")
        super().__init__(units, activation, input_shape=input_shape if input_dim is None else input_dim, **options)

    @property
    def input_dim(self) -> int | None:
        return None if self.input_shape is None else self.input_shape[0]

    @property
    def output_dim(self) -> int:
        return self.units

    @property
    def fan_in(self) -> int:
        return self.input_shape[0]

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ConfigError(
                f"Dense takes flat inputs (samples, features), but its inputs have shape {input_shape} per sample; "
                "put a Flatten() before it"
            )
        return (self.units,)

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        buffers = self.affine_buffers((rows, self.units), backward)
        if backward and need_dx:
            buffers["dx"] = self.backend.empty((rows, self.fan_in))
        return Workspace(buffers, backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        ws.input = x
        return self.affine_forward(x, ws)

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        dz = self.affine_backward(ws.input, dy, ws)
        if not need_dx:
            return None
        self.backend.kernels.product(dz, self.params["W"].T, ws.batch["dx"])
        return ws.batch["dx"]

    def settings(self) -> dict[str, Any]:
        return {"units": self.units, **super().settings()}
