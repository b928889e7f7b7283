"""Learning-rate schedules: functions of the epoch number, so a resumed run gets the same rates."""

from __future__ import annotations

import math
from collections.abc import Callable


def cosine(lr: float, epochs: int, floor: float = 0.0) -> Callable[[int], float]:
    """Cosine decay from ``lr`` at epoch 0 towards ``floor`` at epoch ``epochs``."""

    def rate(epoch: int) -> float:
        progress = min(epoch, epochs) / max(epochs, 1)
        return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return rate

