"""Optimizers: each update is one fused kernel pass over the flat parameter, gradient and moment buffers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass
class Optimizer:
    """Base: ``slots`` is how many moment buffers of the parameters' size the optimizer keeps."""

    lr: float = 0.01
    slots = 0
    name = ""

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not is_finite_number(value):
                raise ConfigError(f"optimizer setting {key} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be a positive number, got {self.lr!r}")

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int) -> None:
        """Apply step number ``step`` (1-based) in place."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass
class SGD(Optimizer):
    name = "sgd"

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int) -> None:
        kernels.sgd_update(params, grads, self.lr)


@dataclass
class Momentum(Optimizer):
    momentum: float = 0.9
    slots = 1
    name = "momentum"

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int) -> None:
        kernels.momentum_update(params, grads, moments[0], self.lr, self.momentum)


@dataclass
class Adam(Optimizer):
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    slots = 2
    name = "adam"

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int) -> None:
        step_size = self.lr / (1 - self.beta1**step)
        bc2_sqrt = math.sqrt(1 - self.beta2**step)
        kernels.adam_update(params, grads, moments[0], moments[1], step_size, self.beta1, self.beta2, self.eps,
                            bc2_sqrt)


_CLASSES: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def get_optimizer(optimizer: str | Optimizer | dict, lr: float | None = None) -> Optimizer:
    """An Optimizer from a name (with optional ``lr``), a config dict, or the instance itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, dict):
        settings = dict(optimizer)
        name = str(settings.pop("name", ""))
    else:
        name, settings = str(optimizer).lower(), {}
    if name not in _CLASSES:
        raise ConfigError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if lr is not None:
        settings["lr"] = lr
    try:
        return _CLASSES[name](**settings)
    except TypeError as exc:
        raise ConfigError(f"bad settings for optimizer {name!r}: {exc}") from None
