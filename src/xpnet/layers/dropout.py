"""Dropout: in training, zero each value with probability ``rate`` and scale the rest by 1 / (1 - rate).

The masks come from a counter-based hash of (seed, step, index), not from a stateful generator: the same seed draws
the same masks on the CPU and the GPU, and a resumed run (which restores the step count) draws exactly the masks an
uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Workspace, register

SEED_RANGE = 2**31


def check_seed(seed: Any, layer: str) -> None:
    """ConfigError unless ``seed`` is None or an int in [0, 2**31): the seed of a layer that draws at random."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_RANGE):
        raise ConfigError(f"{layer} seed must be an integer in [0, 2**31) or None, got {seed!r}")


def stream_seed(seed: int, phase: Phase) -> int:
    """The hash seed of a layer's draws in ``phase``: its own seed on rank 0, and on other data-parallel ranks
    (streams) keys that no seed in [0, 2**31) gives, so every rank draws its own."""
    return seed + phase.stream * SEED_RANGE * 2


@register
class Dropout(Layer):
    """``Dropout(rate)``, rate in [0, 1); a no-op at inference. ``seed`` is drawn from the model's seed if None."""

    type_name = "dropout"
    uses_step = True

    def __init__(self, rate: float, seed: int | None = None, *, input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        if not is_finite_number(rate) or not 0 <= rate < 1:
            raise ConfigError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        check_seed(seed, "Dropout")
        self.rate, self.seed = float(rate), seed

    def initialize(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.seed is None:
            self.seed = int(rng.integers(SEED_RANGE))
        return {}

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        if not backward or self.rate == 0:
            return Workspace(backward=backward)
        shape = (rows, *self.input_shape)
        return Workspace({"out": self.backend.empty(shape), "mask": self.backend.empty(shape)}, backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        ws.training = phase.training and "mask" in ws.batch
        if not ws.training:
            return x
        self.backend.kernels.dropout(x, self.rate, stream_seed(self.seed, phase), phase.step, ws.batch["out"],
                                     ws.batch["mask"])
        return ws.batch["out"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        if not need_dx:
            return None
        if ws.training:
            self.backend.kernels.dropout_backward(dy, ws.batch["mask"], dy)
        return dy

    def settings(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed}

    def details(self) -> str:
        return f"rate {self.rate:g}"
