"""Optimizers: each update is one fused kernel pass over the flat parameter, gradient and moment buffers.

An optimizer is the one home of the learning rate: ``lr`` is the configured base rate, and its optional
``schedule`` (``xpnet.schedules``) turns it into the rate of each update from the training progress the trainer
passes in; both are saved in the model's config, so ``xpnet info`` shows what the run was configured with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.schedules import Schedule, get_schedule

OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass
class Optimizer:
    """Base: ``slots`` is how many moment buffers of the parameters' size the optimizer keeps; ``lr`` the base
    learning rate, which ``schedule`` (None: constant) varies over training."""

    lr: float = 0.01
    schedule: Schedule | dict[str, Any] | None = field(default=None, kw_only=True)
    slots = 0
    name = ""

    def __post_init__(self) -> None:
        self.schedule = get_schedule(self.schedule)
        for key, value in self._settings().items():
            if not is_finite_number(value):
                raise ConfigError(f"optimizer setting {key} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be a positive number, got {self.lr!r}")

    def _settings(self) -> dict[str, Any]:
        """The numeric settings (everything but the schedule)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "schedule"}

    def set_rate(self, lr: float) -> None:
        """Change the base rate (what callbacks such as ReduceLROnPlateau and LearningRateScheduler do between
        epochs); the schedule, if any, still applies on top of it. ConfigError unless a positive finite number."""
        if not is_finite_number(lr) or lr <= 0:
            raise ConfigError(f"learning rate must be a positive number, got {lr!r}")
        self.lr = float(lr)

    def rate(self, progress: float = 0.0) -> float:
        """The learning rate of an update at ``progress`` epochs into training (a host float: no device sync)."""
        return self.lr if self.schedule is None else float(self.schedule.rate(self.lr, progress))

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int,
               progress: float = 0.0) -> None:
        """Apply step number ``step`` (1-based), at ``progress`` epochs into training, in place."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        config = {"name": self.name, **self._settings()}
        if self.schedule is not None:
            config["schedule"] = self.schedule.config()
        return config

    def describe(self) -> str:
        """The name, configured rate and schedule: ``adam (lr 0.001, cosine over 10 epochs)``."""
        schedule = "" if self.schedule is None else f", {self.schedule.describe()}"
        return f"{self.name} (lr {self.lr:g}{schedule})"


@dataclass
class SGD(Optimizer):
    name = "sgd"

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int,
               progress: float = 0.0) -> None:
        kernels.sgd_update(params, grads, self.rate(progress))


@dataclass
class Momentum(Optimizer):
    momentum: float = 0.9
    slots = 1
    name = "momentum"

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int,
               progress: float = 0.0) -> None:
        kernels.momentum_update(params, grads, moments[0], self.rate(progress), self.momentum)


@dataclass
class Adam(Optimizer):
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    slots = 2
    name = "adam"

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int,
               progress: float = 0.0) -> None:
        step_size = self.rate(progress) / (1 - self.beta1**step)
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
