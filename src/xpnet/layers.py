"""Dense layers: configuration, parameter views into the model's flat buffer, and per-batch work buffers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.initializers import INITIALIZERS, default_initializer
from xpnet.kernels import ACTIVATIONS


@dataclass
class Dense:
    """A fully connected layer ``a = f(x @ W + b)``.

    ``init`` names an initialiser (default: He for rectifiers, Glorot otherwise); ``alpha`` is the leaky-ReLU
    slope. ``W``, ``b``, ``dW`` and ``db`` are set when a model binds the layer to its flat buffers.
    """

    input_dim: int
    output_dim: int
    activation: str = "identity"
    bias: bool = True
    init: str | None = None
    init_scale: float | None = None
    alpha: float = 0.01
    W: Any = field(default=None, repr=False)
    b: Any = field(default=None, repr=False)
    dW: Any = field(default=None, repr=False)
    db: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("input_dim", "output_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Dense {name} must be a positive integer, got {value!r}")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; use one of {', '.join(ACTIVATIONS)}"
            )
        if not isinstance(self.bias, bool):
            raise ConfigError(f"Dense bias must be True or False, got {self.bias!r}")
        if not is_finite_number(self.alpha):
            raise ConfigError(f"Dense alpha (the leaky-ReLU slope) must be a finite number, got {self.alpha!r}")
        if self.init_scale is not None and not is_finite_number(self.init_scale):
            raise ConfigError(f"Dense init_scale must be a finite number or None, got {self.init_scale!r}")
        if self.init is None:
            self.init = default_initializer(self.activation)
        if not isinstance(self.init, str) or self.init not in INITIALIZERS:
            raise ConfigError(f"unknown initializer {self.init!r}; use one of {', '.join(INITIALIZERS)}")

    @property
    def code(self) -> int:
        """The kernels' integer code for this layer's activation."""
        return ACTIVATIONS[self.activation]

    @property
    def parameter_count(self) -> int:
        return self.input_dim * self.output_dim + (self.output_dim if self.bias else 0)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description, the inverse of ``Dense(**config)``."""
        return {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "activation": self.activation,
            "bias": self.bias,
            "init": self.init,
            "init_scale": self.init_scale,
            "alpha": self.alpha,
        }


@dataclass
class LayerBuffers:
    """Preallocated per-layer arrays for one batch: pre-activation, activation, derivative, backprop delta."""

    z: Any
    a: Any
    d: Any
    delta: Any

    def view(self, n: int) -> LayerBuffers:
        """The first ``n`` rows (a smaller last batch), still C-contiguous."""
        return LayerBuffers(self.z[:n], self.a[:n], None if self.d is None else self.d[:n], self.delta[:n])
