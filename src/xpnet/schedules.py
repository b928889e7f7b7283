"""Learning-rate schedules: what an optimizer's rate is at a point of training, from its configured base rate.

Cosine decay, one-cycle (PyTorch's OneCycleLR), step decay, exponential decay, and a linear warm-up that leads
into any of them (``Warmup(1, Cosine(9))``). Every schedule is per step: progress is fractional.

A schedule belongs to its optimizer (``Adam(lr=1e-3, schedule=Cosine(10))``), which asks it for the rate before
every update, given the training progress in epochs (fractional: epoch + batches done / batches per epoch). The
rate is a host float, so it costs no device read-back, and a resumed run, which restores its position, gets the
same rates. A schedule's ``config()`` is saved with the optimizer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

from xpnet.checks import build_named, is_finite_number
from xpnet.errors import ConfigError


class Schedule(Protocol):
    """The rate at ``progress`` epochs for a base rate ``lr``; a config to save and a phrase for summaries."""

    def rate(self, lr: float, progress: float) -> float: ...

    def config(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Cosine:
    """Cosine decay from the base rate at progress 0 towards ``floor`` at progress ``epochs``, then ``floor``."""

    epochs: int
    floor: float = 0.0
    name: ClassVar[str] = "cosine"

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"a cosine schedule's epochs must be a non-negative integer, got {self.epochs!r}")
        if not is_finite_number(self.floor) or self.floor < 0:
            raise ConfigError(f"a cosine schedule's floor must be a non-negative number, got {self.floor!r}")

    def rate(self, lr: float, progress: float) -> float:
        fraction = min(progress, self.epochs) / max(self.epochs, 1)
        return self.floor + (lr - self.floor) * 0.5 * (1 + math.cos(math.pi * fraction))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def describe(self) -> str:
        floor = f" to {self.floor:g}" if self.floor else ""
        return f"cosine over {self.epochs} epoch{'' if self.epochs == 1 else 's'}{floor}"


def _check_number(value: Any, what: str, low: float, high: float | None = None, *, low_open: bool = False) -> None:
    """ConfigError unless ``value`` is a finite number in [low, high] (``low_open``: above ``low``)."""
    if (not is_finite_number(value) or value < low or (low_open and value == low)
            or (high is not None and value > high)):
        bound = f"{'above' if low_open else 'at least'} {low:g}" + ("" if high is None else f" and at most {high:g}")
        raise ConfigError(f"{what} must be a number {bound}, got {value!r}")


@dataclass(frozen=True)
class OneCycle:
    """PyTorch's ``OneCycleLR`` (cosine annealing, three_phase False, no momentum cycling) with the optimizer's
    base rate as ``max_lr``, over ``epochs`` of ``steps_per_epoch`` updates: from lr / div_factor up to lr over the
    first ``pct_start`` of the steps, then down to lr / div_factor / final_div_factor at the last step (and there
    after it). Update k of the run (0-based) gets exactly the rate PyTorch's scheduler gives after k steps."""

    epochs: int
    steps_per_epoch: int = 1
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    name: ClassVar[str] = "onecycle"

    def __post_init__(self) -> None:
        for key in ("epochs", "steps_per_epoch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"a one-cycle schedule's {key} must be a positive integer, got {value!r}")
        if self.epochs * self.steps_per_epoch < 2:
            raise ConfigError("a one-cycle schedule needs at least 2 steps in all: give more epochs or steps")
        _check_number(self.pct_start, "a one-cycle schedule's pct_start", 0.0, 1.0, low_open=True)
        _check_number(self.div_factor, "a one-cycle schedule's div_factor", 0.0, low_open=True)
        _check_number(self.final_div_factor, "a one-cycle schedule's final_div_factor", 0.0, low_open=True)

    def rate(self, lr: float, progress: float) -> float:
        total = self.epochs * self.steps_per_epoch
        step = min(progress * self.steps_per_epoch, total - 1)
        initial = lr / self.div_factor
        phases = ((self.pct_start * total - 1, initial, lr), (total - 1, lr, initial / self.final_div_factor))
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
            start_step = end_step
        raise AssertionError("unreachable: the last phase always answers")

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def describe(self) -> str:
        return f"one-cycle over {self.epochs} epoch{'' if self.epochs == 1 else 's'}"


@dataclass(frozen=True)
class StepDecay:
    """The rate times ``gamma`` after every ``every`` epochs (PyTorch's ``StepLR`` stepped per epoch)."""

    every: float
    gamma: float = 0.1
    name: ClassVar[str] = "step"

    def __post_init__(self) -> None:
        _check_number(self.every, "a step schedule's every (epochs)", 0.0, low_open=True)
        _check_number(self.gamma, "a step schedule's gamma", 0.0, 1.0, low_open=True)

    def rate(self, lr: float, progress: float) -> float:
        return lr * self.gamma ** math.floor(progress / self.every + 1e-9)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def describe(self) -> str:
        return f"times {self.gamma:g} every {self.every:g} epochs"


@dataclass(frozen=True)
class Exponential:
    """The rate times ``gamma`` per epoch, smoothly per step: lr * gamma ** progress (at whole epochs, PyTorch's
    ``ExponentialLR`` stepped per epoch)."""

    gamma: float
    name: ClassVar[str] = "exponential"

    def __post_init__(self) -> None:
        _check_number(self.gamma, "an exponential schedule's gamma", 0.0, 1.0, low_open=True)

    def rate(self, lr: float, progress: float) -> float:
        return lr * self.gamma ** progress

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def describe(self) -> str:
        return f"times {self.gamma:g} per epoch"


@dataclass(frozen=True)
class Warmup:
    """A linear warm-up over the first ``epochs`` (from ``start`` times the rate to the full rate), then ``then``
    (another schedule, run from its own progress 0; None: constant): ``Warmup(1, Cosine(9))``."""

    epochs: float
    then: Any = None
    start: float = 0.0
    name: ClassVar[str] = "warmup"

    def __post_init__(self) -> None:
        _check_number(self.epochs, "a warm-up's epochs", 0.0, low_open=True)
        _check_number(self.start, "a warm-up's start", 0.0, 1.0)
        then = get_schedule(self.then)
        if isinstance(then, Warmup):
            raise ConfigError("a warm-up cannot be followed by another warm-up")
        object.__setattr__(self, "then", then)

    def rate(self, lr: float, progress: float) -> float:
        if progress < self.epochs:
            return lr * (self.start + (1 - self.start) * progress / self.epochs)
        return lr if self.then is None else self.then.rate(lr, progress - self.epochs)

    def config(self) -> dict[str, Any]:
        then = None if self.then is None else self.then.config()
        return {"name": self.name, "epochs": self.epochs, "then": then, "start": self.start}

    def describe(self) -> str:
        after = "" if self.then is None else f", then {self.then.describe()}"
        return f"warm-up over {self.epochs:g} epoch{'' if self.epochs == 1 else 's'}{after}"


SCHEDULE_FLAGS = ("cosine", "onecycle", "step", "exponential", "constant")
"""The choices of ``xpnet train --schedule`` (``xpnet.run.schedule`` builds them)."""

SCHEDULES: dict[str, type] = {cls.name: cls for cls in (Cosine, OneCycle, StepDecay, Exponential, Warmup)}


def get_schedule(schedule: Schedule | dict[str, Any] | None) -> Schedule | None:
    """A schedule from a saved config dict (``{"name": "cosine", "epochs": 10}``), the schedule itself, or None."""
    if schedule is None or not isinstance(schedule, dict):
        if schedule is not None and not callable(getattr(schedule, "rate", None)):
            raise ConfigError(f"{schedule!r} is not a learning-rate schedule (such as Cosine(epochs))")
        return schedule
    settings = dict(schedule)
    name = settings.pop("name", None)
    return build_named("learning-rate schedule", SCHEDULES, name, settings, ", ".join(SCHEDULES))
