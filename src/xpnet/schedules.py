"""Learning-rate schedules: functions of the training progress in epochs (fractional: the trainer asks before every
step), so a resumed run, which restores its position, gets the same rates."""

from __future__ import annotations

import math
from collections.abc import Callable


def cosine(lr: float, epochs: int, floor: float = 0.0) -> Callable[[float], float]:
    """Cosine decay from ``lr`` at progress 0 towards ``floor`` at progress ``epochs``."""

    def rate(epoch: float) -> float:
        progress = min(epoch, epochs) / max(epochs, 1)
        return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return rate

