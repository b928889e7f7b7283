"""Weight initialisers, drawn on the host from the backend's seeded generator."""

from __future__ import annotations

import math

import numpy as np

from xpnet.errors import ConfigError

INITIALIZERS = ("uniform", "normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")


def default_initializer(activation: str) -> str:
    """He for rectifiers, Glorot otherwise (the usual choice for keeping activations' variance stable)."""
    return "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"


def initial_weights(
    name: str, fan_in: int, units: int, rng: np.random.Generator, scale: float | None = None,
    *, receptive_field: int = 1,
) -> np.ndarray:
    """A (fan_in, units) float64 weight matrix.

    ``uniform`` draws U(-scale, scale) and ``normal`` N(0, scale), with ``scale`` defaulting to 1/sqrt(fan_in);
    the Glorot and He variants use their published scales and ignore ``scale``. Glorot's fan-out is ``units`` times
    ``receptive_field`` (a convolution's window area), as Keras and PyTorch count it: each input value reaches
    every filter at every window position it falls in.
    """
    shape = (fan_in, units)
    fan_out = units * receptive_field
    if name == "uniform":
        limit = 1 / math.sqrt(fan_in) if scale is None else scale
        return rng.uniform(-limit, limit, shape)
    if name == "normal":
        return rng.normal(0.0, 1 / math.sqrt(fan_in) if scale is None else scale, shape)
    if name == "glorot_uniform":
        limit = math.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if name == "glorot_normal":
        return rng.normal(0.0, math.sqrt(2 / (fan_in + fan_out)), shape)
    if name == "he_uniform":
        limit = math.sqrt(6 / fan_in)
        return rng.uniform(-limit, limit, shape)
    if name == "he_normal":
        return rng.normal(0.0, math.sqrt(2 / fan_in), shape)
    raise ConfigError(f"unknown initializer {name!r}; use one of {', '.join(INITIALIZERS)}")
