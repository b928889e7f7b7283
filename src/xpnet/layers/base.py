"""The layer interface: a layer owns its shapes, parameters, state, work buffers, forward and backward.

A ``Model`` only sequences layers. It asks each one, in order, for its output shape (``build``), the shapes of its
trainable parameters and non-trainable state, and their initial values; it then hands the layer views into its
flat parameter, gradient and state buffers (``bind``), preallocated work buffers per batch size (``workspace``),
and calls ``forward`` and ``backward``. Every layer type registers itself by its type name, which is how saved
models name their layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from xpnet.errors import ConfigError

Shape = tuple[int, ...]

LAYER_TYPES: dict[str, type[Layer]] = {}
"""Every layer class by its ``type_name``: the registry saved models are read with."""


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` constructible from a saved config by its ``type_name``."""
    LAYER_TYPES[cls.type_name] = cls
    return cls


def as_shape(value: Any, what: str) -> Shape:
    """``value`` (an int or a sequence of ints) as a shape of positive ints, or a ConfigError naming ``what``."""
    items = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        shape = tuple(items)
    except TypeError:
        shape = ()
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ConfigError(f"{what} must be a positive integer or a tuple of them, got {value!r}")
    return shape


def as_pair(value: Any, what: str) -> tuple[int, int]:
    """A kernel size, stride or pool size: one positive int for both axes, or (height, width)."""
    shape = as_shape(value, what)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) != 2:
        raise ConfigError(f"{what} must be one integer or (height, width), got {value!r}")
    return shape[0], shape[1]


def describe_shape(shape: Shape) -> str:
    """A per-sample shape as Keras prints it: (None, 26, 26, 32)."""
    return "(None, " + ", ".join(str(n) for n in shape) + ")"


@dataclass
class Phase:
    """What a forward pass is for: ``training`` turns on dropout and batch statistics; ``step`` (the optimizer's
    step count) seeds dropout masks, so a resumed run draws the same masks; ``stream`` (a data-parallel rank)
    gives each rank's share of a batch masks of its own."""

    training: bool
    step: int = 0
    stream: int = 0


@dataclass
class Workspace:
    """A layer's preallocated arrays for batches of up to some number of rows.

    ``batch`` arrays have the batch as their first axis and are cut to a shorter last batch with ``first``;
    ``fixed`` arrays (per-channel statistics) do not depend on the batch size. ``backward`` says whether the
    arrays a backward pass needs were allocated.
    """

    batch: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    backward: bool = False
    input: Any = None
    """The input of the last forward pass (a reference, not a copy): what the backward pass differentiates at."""
    training: bool = False
    phase: Phase | None = None
    """The phase of the last training forward pass, for a layer whose backward pass must replay its random draws."""

    def first(self, rows: int) -> Workspace:
        """The same buffers cut to their first ``rows`` rows (still C-contiguous)."""
        return Workspace({k: v[:rows] for k, v in self.batch.items()}, self.fixed, self.backward)


class Layer:
    """Base class. Subclasses set ``type_name`` and override what they need; the defaults are a layer with no
    parameters that passes its input through unchanged."""

    type_name: ClassVar[str] = ""
    uses_step: ClassVar[bool] = False
    """Whether its forward pass reads ``Phase.step`` (random draws per step): such a step cannot replay as a graph."""
    outside_kernels: ClassVar[str | None] = None
    """What its training step does to arrays outside kernel calls, in a few words, or None: a kernel replay (the
    CPU's graph step) repeats only the kernel calls, so such a layer steps eagerly there."""
    decayed: ClassVar[tuple[str, ...]] = ()
    """The parameters that weight decay and max-norm act on, each a (fan_in, units) matrix: the weights, never
    biases or normalisation parameters."""

    def __init__(self, *, input_shape: Any = None) -> None:
        self.declared_input_shape = None if input_shape is None else as_shape(input_shape, f"{self.type_name} "
                                                                                          "input_shape")
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.fused_with_loss = False
        """Set by the model on its last layer when the loss hands back dL/dz: the activation's derivative is
        then already folded into the incoming gradient."""
        self.backend: Any = None
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ structure
    def build(self, input_shape: Shape, index: int) -> Shape:
        """Fix the input shape (per sample) and return the output shape; ConfigError when they cannot work."""
        if self.declared_input_shape is not None and self.declared_input_shape != input_shape:
            raise ConfigError(
                f"layer {index} ({self.type_name}) expects inputs of shape {self.declared_input_shape}, but "
                f"{'the model input' if index == 0 else f'layer {index - 1}'} gives {input_shape}"
            )
        try:
            output = self.output_shape_for(input_shape)
        except ConfigError as exc:
            raise ConfigError(f"layer {index} ({self.type_name}): {exc}") from None
        self.input_shape, self.output_shape = input_shape, output
        return output

    def output_shape_for(self, input_shape: Shape) -> Shape:
        """The output shape for ``input_shape``; ConfigError (without the layer's index) when it cannot work."""
        return input_shape

    def parameter_shapes(self) -> dict[str, Shape]:
        """Trainable parameters by name, in the order they sit in the flat buffer."""
        return {}

    def state_shapes(self) -> dict[str, Shape]:
        """Non-trainable state (running statistics) by name, in the order it sits in the state buffer."""
        return {}

    def initialize(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Initial parameter values (host float64), drawn from the model's seeded generator."""
        return {}

    def initial_state(self) -> dict[str, np.ndarray]:
        return {}

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes().values())

    @property
    def state_count(self) -> int:
        return sum(math.prod(shape) for shape in self.state_shapes().values())

    def bind(self, backend: Any, params: dict[str, Any], grads: dict[str, Any], state: dict[str, Any]) -> None:
        """Take the backend and the views of the model's flat buffers that hold this layer's arrays."""
        self.backend, self.params, self.grads, self.state = backend, params, grads, state

    # -------------------------------------------------------------------------------------------- weights
    def _arrays(self) -> dict[str, Any]:
        """The layer's arrays in Keras's order: trainable parameters (kernel, then bias; BatchNorm's gamma, beta),
        then non-trainable state (running mean, running variance)."""
        if self.backend is None:
            raise ConfigError(f"this {self.type_name} layer is not part of a model yet: its weights exist once a "
                              "Model (Sequential) is built from it")
        return {**self.params, **self.state}

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of the layer's arrays, Keras's order (kernel, then bias, then any running statistics); a
        Dense kernel is (inputs, units), a Conv2D kernel (kernel height x width x input channels, filters)."""
        return [np.array(self.backend.to_host(array)) for array in self._arrays().values()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Overwrite the layer's arrays from a list like ``get_weights()``'s: same count, each of the same shape;
        ConfigError naming the first that is not (nothing is changed then)."""
        arrays = self._arrays()
        shapes = {name: tuple(array.shape) for name, array in arrays.items()}
        expected = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        if not isinstance(weights, (list, tuple)) or len(weights) != len(arrays):
            got = f"{len(weights)}" if isinstance(weights, (list, tuple)) else f"a {type(weights).__name__}"
            raise ConfigError(f"{self.type_name} set_weights needs a list of {len(arrays)} arrays ({expected}), got "
                              f"{got}")
        checked = []
        for (name, shape), value in zip(shapes.items(), weights, strict=True):
            try:
                host = np.asarray(self.backend.to_host(value), dtype=np.float64)
            except (TypeError, ValueError):
                raise ConfigError(f"{self.type_name} weight {name} is not an array of numbers") from None
            if host.shape != shape or not np.isfinite(host).all():
                raise ConfigError(f"{self.type_name} weight {name} must be finite numbers of shape {shape}, got "
                                  f"shape {host.shape}; expected {expected}")
            checked.append(host)
        for array, host in zip(arrays.values(), checked, strict=True):
            array[...] = self.backend.asarray(host, dtype=array.dtype)

    # -------------------------------------------------------------------------------------------- compute
    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        """Buffers for batches of up to ``rows`` rows; with ``backward``, also what the backward pass needs (and
        the input gradient when ``need_dx``)."""
        return Workspace(backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        """The layer's output for the batch ``x`` (shape ``(rows, *input_shape)``), in ``ws``'s buffers."""
        return x

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        """Given dL/d(output) ``dy`` (which may be overwritten), write the parameter gradients into ``self.grads``
        and return dL/d(input), or None when ``need_dx`` is false."""
        return dy if need_dx else None

    # -------------------------------------------------------------------------------------------- describe
    def settings(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable), the inverse of ``type(self)(**settings)``."""
        return {}

    def config(self) -> dict[str, Any]:
        config = {"type": self.type_name, **self.settings()}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    def details(self) -> str:
        """A few words for ``summary()``: activation, kernel, rate..."""
        return ""

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({settings})"


def layer_from_config(config: dict[str, Any], what: str = "layer") -> Layer:
    """A layer from its saved config ``{"type": ..., settings...}``; ConfigError for an unknown type or setting."""
    if not isinstance(config, dict):
        raise ConfigError(f"{what} must be a dict with a 'type', got {config!r}")
    settings = dict(config)
    kind = settings.pop("type", None)
    cls = LAYER_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"{what} has unknown layer type {kind!r}; known types: {', '.join(sorted(LAYER_TYPES))}")
    try:
        return cls(**settings)
    except TypeError as exc:
        raise ConfigError(f"{what} ({kind}) has bad settings: {exc}") from None

