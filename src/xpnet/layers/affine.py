"""What Dense and Conv2D share: ``z = inputs @ W + b`` by a matrix product (a Dense layer's ``product`` kernel, a
convolution's ``convolution`` on its windows), then one fused bias + activation kernel that also writes the
activation's derivative for the backward pass; backward turns dL/da into dL/dz in place, sums the bias gradient on
the way, and finishes with the weight gradient and a product for dL/dx."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.initializers import INITIALIZERS, default_initializer, initial_weights
from xpnet.kernels import ACTIVATIONS
from xpnet.layers.base import Layer, Shape, Workspace


class AffineLayer(Layer):
    """Base of the layers that compute ``f(patches @ W + b)``; subclasses say what a patch row is (``fan_in``)."""

    decayed = ("W",)

    def __init__(
        self,
        units: int,
        activation: str = "identity",
        *,
        bias: bool = True,
        init: str | None = None,
        init_scale: float | None = None,
        alpha: float = 0.01,
        input_shape: Any = None,
    ) -> None:
        super().__init__(input_shape=input_shape)
        kind = type(self).__name__
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ConfigError(f"{kind} units must be a positive integer, got {units!r}")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}")
        if not isinstance(bias, bool):
            raise ConfigError(f"{kind} bias must be True or False, got {bias!r}")
        if not is_finite_number(alpha):
            raise ConfigError(f"{kind} alpha (the leaky-ReLU slope) must be a finite number, got {alpha!r}")
        if init_scale is not None and not is_finite_number(init_scale):
            raise ConfigError(f"{kind} init_scale must be a finite number or None, got {init_scale!r}")
        init = default_initializer(activation) if init is None else init
        if not isinstance(init, str) or init not in INITIALIZERS:
            raise ConfigError(f"unknown initializer {init!r}; use one of {', '.join(INITIALIZERS)}")
        self.units, self.activation, self.bias = units, activation, bias
        self.init, self.init_scale, self.alpha = init, init_scale, alpha

    @property
    def code(self) -> int:
        """The kernels' integer code for this layer's activation."""
        return ACTIVATIONS[self.activation]

    @property
    def fan_in(self) -> int:
        """Values in one row of the matmul's left operand (inputs per unit)."""
        raise NotImplementedError

    @property
    def receptive_field(self) -> int:
        """The window area: how many of each unit's weights one input value meets, which Glorot's fan-out counts
        (1 for Dense)."""
        return 1

    def parameter_shapes(self) -> dict[str, Shape]:
        shapes = {"W": (self.fan_in, self.units)}
        if self.bias:
            shapes["b"] = (self.units,)
        return shapes

    def initialize(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        values = {"W": initial_weights(self.init, self.fan_in, self.units, rng, self.init_scale,
                                       receptive_field=self.receptive_field)}
        if self.bias:
            values["b"] = np.zeros(self.units)
        return values

    def bind(self, backend: Any, params: dict[str, Any], grads: dict[str, Any], state: dict[str, Any]) -> None:
        super().bind(backend, params, grads, state)
        if not self.bias:  # a constant zero bias, and a scratch gradient that the optimizer never sees
            self.params = {**params, "b": backend.zeros(self.units)}
            self.grads = {**grads, "b": backend.zeros(self.units)}

    def affine_buffers(self, shape: Shape, backward: bool) -> dict[str, Any]:
        """z and a, of ``shape`` (batch first, units last), and f'(z) when a backward pass will need it."""
        empty = self.backend.empty
        buffers = {"z": empty(shape), "a": empty(shape)}
        if backward and not self.fused_with_loss:
            buffers["d"] = empty(shape)
        return buffers

    def _rows(self, x: Any) -> Any:
        """``x`` as matmul rows of ``units`` columns (a view: the buffers are C-contiguous)."""
        return x.reshape(-1, self.units)

    def affine_forward(self, patches: Any, ws: Workspace) -> Any:
        """f(patches @ W + b) into ``ws``'s ``a``, keeping z (and f'(z) when ``ws`` has room for it)."""
        self.backend.kernels.product(patches, self.params["W"], self._rows(ws.batch["z"]))
        return self.activate(ws)

    def activate(self, ws: Workspace) -> Any:
        """z += b, a = f(z) and f'(z) (when ``ws`` has room for it), all in ``ws``'s buffers; returns a."""
        d = ws.batch.get("d")
        self.backend.kernels.bias_activation(self._rows(ws.batch["z"]), self.params["b"], self.code, self.alpha,
                                             self._rows(ws.batch["a"]), None if d is None else self._rows(d))
        return ws.batch["a"]

    def affine_backward(self, patches: Any, dy: Any, ws: Workspace) -> Any:
        """dL/dz from dL/da ``dy`` (in place), then the bias and weight gradients; returns dL/dz as rows."""
        dz = self.deactivate(dy, ws)
        self.backend.kernels.weight_gradient(patches, dz, self.grads["W"])
        return dz

    def deactivate(self, dy: Any, ws: Workspace) -> Any:
        """dL/dz from dL/da ``dy`` (in place) and the bias gradient, its column sums; returns dL/dz as rows."""
        dz = self._rows(dy)
        if self.fused_with_loss:  # the loss already gave dL/dz
            self.backend.kernels.bias_gradient(dz, self.grads["b"])
        else:
            self.backend.kernels.activation_backward(dz, self._rows(ws.batch["d"]), self._rows(ws.batch["a"]),
                                                     self.code, dz, self.grads["b"])
        return dz

    def settings(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "bias": self.bias,
            "init": self.init,
            "init_scale": self.init_scale,
            "alpha": self.alpha,
        }

    def details(self) -> str:
        return self.activation
