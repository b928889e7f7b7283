"""Two ways to describe a network: a list of layer dicts (as tutorials write them) and a short form of sizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xpnet.errors import ConfigError
from xpnet.layers import Dense
from xpnet.model import Model

LAYER_KEYS = {"input_dim", "output_dim", "activation", "bias", "init", "init_scale", "alpha"}


def layers_from_dicts(specs: Sequence[Mapping[str, Any]]) -> list[Dense]:
    """Dense layers from dicts such as ``{"input_dim": 2, "output_dim": 4, "activation": "relu"}``."""
    layers = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise ConfigError(f"layer {i} must be a dict with input_dim, output_dim and activation, got {spec!r}")
        unknown = set(spec) - LAYER_KEYS
        if unknown:
            raise ConfigError(f"layer {i} has unknown keys {sorted(unknown)}; allowed: {sorted(LAYER_KEYS)}")
        missing = {"input_dim", "output_dim"} - set(spec)
        if missing:
            raise ConfigError(f"layer {i} is missing {sorted(missing)}")
        layers.append(Dense(**spec))
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
    **model_options: Any,
) -> Model:
    """A Model from layer sizes, e.g. ``mlp([784, 512, 256, 10])``.

    ``activation`` is one name for every hidden layer or one name per hidden layer; ``output_activation`` is the
    last layer's.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"an MLP needs at least an input and an output size, got {sizes}")
    hidden = len(sizes) - 2
    activations = [activation] * hidden if isinstance(activation, str) else list(activation)
    if len(activations) != hidden:
        raise ConfigError(f"{len(activations)} hidden activations given for {hidden} hidden layers")
    activations.append(output_activation)
    layers = [
        Dense(n_in, n_out, act, bias=bias, init=init)
        for n_in, n_out, act in zip(sizes[:-1], sizes[1:], activations, strict=True)
    ]
    return Model(layers, **model_options)
