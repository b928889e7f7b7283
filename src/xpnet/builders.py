"""Two short ways to describe a network: a list of layer dicts (as tutorials write them) and a list of sizes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from xpnet.errors import ConfigError
from xpnet.layers import Conv2D, Dense, Dropout, Flatten, Layer, RandomShift, Reshape, layer_from_config
from xpnet.model import Model

DENSE_KEYS = {"input_dim", "output_dim", "activation", "bias", "init", "init_scale", "alpha"}


def layers_from_dicts(specs: Sequence[Mapping[str, Any]]) -> list[Layer]:
    """Layers from dicts: the tutorials' ``{"input_dim": 2, "output_dim": 4, "activation": "relu"}`` for a Dense
    layer, or any layer's saved form ``{"type": "conv2d", "filters": 32, "kernel_size": 3, ...}``."""
    layers = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise ConfigError(f"layer {i} must be a dict with input_dim, output_dim and activation, got {spec!r}")
        if "type" in spec:
            layers.append(layer_from_config(dict(spec), f"layer {i}"))
            continue
        unknown = set(spec) - DENSE_KEYS
        if unknown:
            raise ConfigError(f"layer {i} has unknown keys {sorted(unknown)}; allowed: {sorted(DENSE_KEYS)}")
        missing = {"input_dim", "output_dim"} - set(spec)
        if missing:
            raise ConfigError(f"layer {i} is missing {sorted(missing)}")
        settings = dict(spec)
        layers.append(Dense(settings.pop("output_dim"), **settings))
    return layers


def from_layer_dicts(specs: Sequence[Mapping[str, Any]], **model_options: Any) -> Model:
    """A Model from a list of layer dicts; ``model_options`` go to ``Model`` (loss, optimizer, lr, device...)."""
    return Model(layers_from_dicts(specs), **model_options)


def mlp(
    sizes: Sequence[int],
    activation: str | Sequence[str] = "relu",
    output_activation: str = "softmax",
    *,
    bias: bool = True,
    init: str | None = None,
    dropout: float = 0.0,
    **model_options: Any,
) -> Model:
    """A Model from layer sizes, e.g. ``mlp([784, 512, 256, 10])``.

    ``activation`` is one name for every hidden layer or one name per hidden layer; ``output_activation`` is the
    last layer's. ``dropout`` > 0 puts a Dropout of that rate after every hidden layer.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"an MLP needs at least an input and an output size, got {sizes}")
    hidden = len(sizes) - 2
    activations = [activation] * hidden if isinstance(activation, str) else list(activation)
    if len(activations) != hidden:
        raise ConfigError(f"{len(activations)} hidden activations given for {hidden} hidden layers")
    layers: list[Layer] = []
    for units, act in zip(sizes[1:-1], activations, strict=True):
        layers.append(Dense(units, act, bias=bias, init=init))
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(sizes[-1], output_activation, bias=bias, init=init))
    return Model(layers, input_shape=sizes[0], **model_options)


def cnn(
    input_shape: Sequence[int] = (28, 28, 1),
    classes: int = 10,
    *,
    filters: Sequence[int] = (32, 64),
    dense: int = 128,
    dropout: float = 0.0,
    shift: int = 0,
    **model_options: Any,
) -> Model:
    """A small convolutional classifier for flat image rows: per entry of ``filters``, a 3x3 ReLU convolution
    ("same" padding) with a 2x2 max-pool (one Conv2D layer that pools before its activation); then a
    ``dense``-unit ReLU layer (with ``dropout`` before and after it) and a softmax output. ``shift`` > 0 puts a
    RandomShift of up to that many pixels first, after the Reshape: training images move at random, which augments
    the data."""
    input_shape = tuple(input_shape)
    layers: list[Layer] = [Reshape(input_shape)]
    if shift:
        layers.append(RandomShift(shift))
    for count in filters:
        layers.append(Conv2D(count, 3, padding="same", activation="relu", max_pool=2))
    layers.append(Flatten())
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(dense, "relu"))
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(classes, "softmax"))
    return Model(layers, input_shape=math.prod(input_shape), **model_options)
