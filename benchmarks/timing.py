"""How everything is measured: warm-ups, interleaved rounds, synchronised clocks, medians."""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def _no_sync() -> None:
    """Nothing to wait for (CPU work is done when the call returns)."""


@dataclass
class Candidate:
    """One thing to time: ``run`` does the work, ``sync`` waits for the device (before and after the clock).

    ``inner`` calls of ``run`` make one sample, so that microsecond kernels are timed over milliseconds.
    """

    run: Callable[[], object]
    sync: Callable[[], None] = _no_sync
    inner: int = 1

    def sample(self) -> float:
        """Seconds per call of ``run``, averaged over ``inner`` calls."""
        self.sync()
        started = time.perf_counter()
        for _ in range(self.inner):
            self.run()
        self.sync()
        return (time.perf_counter() - started) / self.inner

    def calibrate(self, min_seconds: float) -> None:
        """Set ``inner`` so that one sample lasts at least ``min_seconds`` (one untimed call first: it compiles)."""
        self.sample()
        once = self.sample()
        self.inner = max(1, min(10_000, math.ceil(min_seconds / max(once, 1e-9))))


def interleave(candidates: Mapping[str, Candidate], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time every candidate once per round, round-robin, so that drifting machine load hits all alike.

    The first ``warmup`` rounds are not recorded. Returns each candidate's ``rounds`` samples (seconds).
    """
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for round_index in range(warmup + rounds):
        for name, candidate in candidates.items():
            seconds = candidate.sample()
            if round_index >= warmup:
                samples[name].append(seconds)
    return samples


@dataclass
class Stats:
    """Median, spread and count of timed samples (seconds)."""

    median: float
    min: float
    max: float
    runs: int
    samples: list[float] = field(repr=False)

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples), list(samples))

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": self.runs,
                "samples": self.samples}


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work on the machine skews timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def log(message: str) -> None:
    """Progress for the person waiting, on stderr."""
    print(message, file=sys.stderr, flush=True)
