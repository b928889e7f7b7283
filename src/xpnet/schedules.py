"""Learning-rate schedules: what an optimizer's rate is at a point of training, from its configured base rate.

A schedule belongs to its optimizer (``Adam(lr=1e-3, schedule=Cosine(10))``), which asks it for the rate before
every update, given the training progress in epochs (fractional: epoch + batches done / batches per epoch). The
rate is a host float, so it costs no device read-back, and a resumed run, which restores its position, gets the
same rates. A schedule's ``config()`` is saved with the optimizer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

from xpnet.checks import is_finite_number
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


SCHEDULES: dict[str, type] = {"cosine": Cosine}


def get_schedule(schedule: Schedule | dict[str, Any] | None) -> Schedule | None:
    """A schedule from a saved config dict (``{"name": "cosine", "epochs": 10}``), the schedule itself, or None."""
    if schedule is None or not isinstance(schedule, dict):
        if schedule is not None and not callable(getattr(schedule, "rate", None)):
            raise ConfigError(f"{schedule!r} is not a learning-rate schedule (such as Cosine(epochs))")
        return schedule
    settings = dict(schedule)
    name = settings.pop("name", None)
    if name not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {name!r}; use one of {', '.join(SCHEDULES)}")
    try:
        return SCHEDULES[name](**settings)
    except TypeError as exc:
        raise ConfigError(f"bad settings for schedule {name!r}: {exc}") from None
