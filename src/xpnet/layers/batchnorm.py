"""BatchNorm: normalise each channel (the last axis) by batch statistics in training, running ones at inference.

Keras's conventions: ``running = momentum * running + (1 - momentum) * batch`` with the batch's (biased) variance,
momentum 0.99, epsilon 1e-3. gamma and beta are trainable parameters; the running mean and variance are state,
kept in the model's state buffer and saved with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, register


@register
class BatchNorm(Layer):
    """``BatchNorm(momentum=0.99, epsilon=1e-3)`` over the last axis (features of a Dense, channels of a Conv2D)."""

    type_name = "batchnorm"

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, *, input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        if not is_finite_number(momentum) or not 0 <= momentum < 1:
            raise ConfigError(f"BatchNorm momentum must be a number in [0, 1), got {momentum!r}")
        if not is_finite_number(epsilon) or epsilon <= 0:
            raise ConfigError(f"BatchNorm epsilon must be a positive number, got {epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)

    @property
    def channels(self) -> int:
        return self.input_shape[-1]

    def parameter_shapes(self) -> dict[str, Shape]:
        return {"gamma": (self.channels,), "beta": (self.channels,)}

    def state_shapes(self) -> dict[str, Shape]:
        return {"running_mean": (self.channels,), "running_var": (self.channels,)}

    def initialize(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"gamma": np.ones(self.channels), "beta": np.zeros(self.channels)}

    def initial_state(self) -> dict[str, np.ndarray]:
        return {"running_mean": np.zeros(self.channels), "running_var": np.ones(self.channels)}

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        empty, shape = self.backend.empty, (rows, *self.input_shape)
        buffers = {"y": empty(shape)}
        if backward:
            buffers["xhat"] = empty(shape)
        return Workspace(buffers, {"inv_std": empty(self.channels)}, backward=backward)

    def _rows(self, x: Any) -> Any:
        return x.reshape(-1, self.channels)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        kernels, p, s = self.backend.kernels, self.params, self.state
        ws.training = phase.training
        y = self._rows(ws.batch["y"])
        if phase.training:
            kernels.batch_norm_train(self._rows(x), p["gamma"], p["beta"], self.epsilon, self.momentum,
                                     s["running_mean"], s["running_var"], y, self._rows(ws.batch["xhat"]),
                                     ws.fixed["inv_std"])
        else:
            kernels.batch_norm_eval(self._rows(x), p["gamma"], p["beta"], s["running_mean"], s["running_var"],
                                    self.epsilon, y)
            if ws.backward:  # the inference-mode normalisation, kept for a backward pass through it
                xp = self.backend.xp
                ws.fixed["inv_std"][...] = 1 / xp.sqrt(s["running_var"] + self.epsilon)
                self._rows(ws.batch["xhat"])[...] = (self._rows(x) - s["running_mean"]) * ws.fixed["inv_std"]
        return ws.batch["y"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        rows, g = self._rows(dy), self.grads
        xhat, inv_std, gamma = self._rows(ws.batch["xhat"]), ws.fixed["inv_std"], self.params["gamma"]
        if ws.training:
            self.backend.kernels.batch_norm_backward(rows, xhat, gamma, inv_std, rows, g["gamma"], g["beta"])
        else:  # running statistics are constants: y is affine in x
            xp = self.backend.xp
            xp.sum(rows, axis=0, out=g["beta"])
            xp.sum(rows * xhat, axis=0, out=g["gamma"])
            rows *= gamma * inv_std
        return dy if need_dx else None

    def settings(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "epsilon": self.epsilon}

    def details(self) -> str:
        return f"momentum {self.momentum:g}"
