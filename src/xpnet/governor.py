"""The thread governor: keeps CPU training fast when other work takes cores away.

Why: a matrix product split over N threads ends when its slowest thread does. When another process holds a core,
the thread that expects it waits for a scheduler time slice (milliseconds) at every product of a step that
otherwise takes about a millisecond, and a training step slows down 3x to 100x; on one thread fewer it loses only
its share of the cores. Which count is fastest changes as other work starts and stops, so it is measured, not
guessed.

How: the trainer reports each step's seconds (``step_done``). After a few warm-up steps (compilation) the governor
probes, and again ``first_interval`` seconds of training later, then twice that, and so on up to every ``interval``
seconds (the first probes can be misled: kernels still loading, a count's first calls), the back-off starting again
from ``first_interval`` whenever a probe changes the count (conditions are moving: a load started or stopped, or a
virtual machine's host moved its vCPUs apart or together); sooner, but never within ``min_interval`` of the last
probe, when the mean step time of the last ``window`` seconds moves by more than ``jump`` from what the chosen count
gave. A probe prices the settled count by its own steps since the last probe (up to the last ``history`` seconds of
them; timed afresh after a jump, or where they cover less than a window), then times each other candidate count
(all threads, then halving down to 1; the first step after each switch discarded) for at least ``window`` seconds
and ``probe_steps`` steps, at the mean step time without the longest step of its window (a one-off). It keeps the
cheapest count, a count's price being its step time raised by ``doubling_gain`` for every doubling of threads (twice
the threads must be that much faster: otherwise their cores are left to the other work, the fair share), and stays
with the settled count unless another is cheaper by more than ``margin``. A count is dropped as soon as the time it
has taken (its discarded first step included) passes twice what the best count so far needed for ``probe_steps``
steps, priced at all it took: it cannot win, and under contention its steps are the slow ones. The very first step a
count ever runs is left out of that time: it loads the kernels that count runs (Numba's serial twins, at one
thread), about 45 ms on the 2-core Intel VM, which made one thread look hopeless in the first probe beside a busy
process (15 ms a step against 5.5).

Why means over time, and the settled count's own steps: beside a busy process the scheduler gives each thread its
core in slices of several milliseconds, so a few 1 ms steps at all threads can all fall between the other
process's slices and look fast while the next step waits 30 ms; the median of 5 steps chose 2 threads there (1.3 ms
against 1.7 ms) where their mean was 7.9 ms. The waits also come in bursts: on the 2-core Intel VM beside a busy
loop, two threads' quick-CNN steps took 5.1 ms in the median, like one thread's, but stretches of 50-450 ms every
0.2-1.5 s waited 48 ms a step, for a mean of 7.5 ms; a fresh 0.1 s window mostly falls between them, the second of
steps the settled count just ran mostly does not. It is CPU-only and does nothing on a GPU backend or when the count
is pinned (``--threads N``, ``$XPNET_THREADS=N``). Time is the sum of the reported step seconds, so pauses between
epochs (validation, checkpoints) neither count nor trigger anything.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xpnet import threads


@dataclass(frozen=True)
class Tuning:
    """The governor's knobs (seconds are seconds of training steps)."""

    probe_steps: int = 5
    window: float = 0.1
    history: float = 1.0
    first_interval: float = 0.5
    interval: float = 10.0
    min_interval: float = 2.0
    jump: float = 1.3
    margin: float = 0.05
    doubling_gain: float = 0.05
    warmup_steps: int = 3


def candidates(maximum: int) -> list[int]:
    """The counts a probe tries: ``maximum``, then halving down to 1 (8 -> 8, 4, 2, 1)."""
    counts = [maximum]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


class StepWindow:
    """Step times covering at least ``seconds`` and ``steps`` steps (then ``full``); with ``keep``, the oldest
    beyond ``keep`` seconds are dropped as new ones come (never below ``steps`` steps)."""

    def __init__(self, seconds: float, steps: int, keep: float | None = None) -> None:
        self.seconds, self.steps, self.keep = seconds, steps, keep
        self.times: deque[float] = deque()
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.times.append(seconds)
        self.total += seconds
        while self.keep and len(self.times) > self.steps and self.total - self.times[0] >= self.keep:
            self.total -= self.times.popleft()

    def clear(self) -> None:
        self.times.clear()
        self.total = 0.0

    @property
    def full(self) -> bool:
        return len(self.times) >= self.steps and self.total >= self.seconds

    @property
    def mean(self) -> float:
        """The mean step time without the window's single longest step (a one-off: the first step of a ``fit``, a
        page fault), so that only waits that recur, as a busy core's do, count."""
        if len(self.times) < 2:
            return self.total
        return (self.total - max(self.times)) / (len(self.times) - 1)


class ThreadGovernor:
    """Chooses the thread count (1 to ``maximum``) from measured step times and applies it through ``apply``.

    ``count`` is the count in use; ``decisions`` lists ``(training seconds, count)`` at the end of every probe.
    """

    def __init__(self, maximum: int, apply: Callable[[int], None], tuning: Tuning | None = None) -> None:
        self.tuning = tuning = tuning or Tuning()
        self.maximum, self.apply = maximum, apply
        self.count = maximum
        self.clock = 0.0
        self.warmup_left = tuning.warmup_steps
        self.queue: list[int] = []  # counts still to try in the probe under way (empty: settled)
        self.samples = StepWindow(tuning.window, tuning.probe_steps)
        self.recent = StepWindow(tuning.window, tuning.probe_steps, keep=tuning.window)
        self.history = StepWindow(tuning.window, tuning.probe_steps, keep=tuning.history)
        self.results: dict[int, float] = {}
        self.spent, self.spent_steps = 0.0, 0  # seconds (and steps) at the count under probe so far
        self.discard = False
        self.loaded = {maximum}  # counts that have run a step (the warm-up steps run the first)
        self.baseline: float | None = None
        self.probed_at = 0.0
        self.gap = tuning.first_interval  # training seconds from a probe to the next: doubles up to interval
        self.settled_count = maximum
        self.decisions: list[tuple[float, int]] = []

    @property
    def probing(self) -> bool:
        return bool(self.queue)

    def step_done(self, seconds: float) -> None:
        """Take the wall time of the training step that just ended; maybe change the count for the next one."""
        self.clock += seconds
        if self.warmup_left:
            self.warmup_left -= 1
            if not self.warmup_left:
                self._start_probe(None)
        elif self.probing:
            self._probe_step(seconds)
        else:
            self.recent.add(seconds)
            self.history.add(seconds)
            if self._jumped():
                self._start_probe(None)  # conditions changed: the history is stale, time the count again
            elif self.clock - self.probed_at >= self.gap:
                self._start_probe(self.history)

    def _jumped(self) -> bool:
        """Whether the step time moved by more than ``jump`` from what the chosen count gave (not sooner than
        ``min_interval`` after the last probe)."""
        if self.clock - self.probed_at < self.tuning.min_interval or not self.recent.full or not self.baseline:
            return False
        ratio = self.recent.mean / self.baseline
        return ratio > self.tuning.jump or ratio < 1 / self.tuning.jump

    def _switch(self, count: int) -> None:
        if count != self.count:
            self.apply(count)
            self.count = count
            self.discard = True  # the first step on a new count pays for waking its threads

    def _start_probe(self, evidence: StepWindow | None) -> None:
        """Time every candidate count; the settled one is priced by ``evidence`` (its own steps since the last
        probe) where that covers a window, else timed like the others."""
        self.queue = [self.count, *(c for c in candidates(self.maximum) if c != self.count)]
        self.results, self.discard, self.spent, self.spent_steps = {}, False, 0.0, 0
        self.samples.clear()
        self.settled_count = self.count
        if evidence is not None and evidence.full:
            self.results[self.queue.pop(0)] = evidence.mean
            self._switch(self.queue[0])

    def _probe_step(self, seconds: float) -> None:
        if self.discard:
            self.discard = False
            if self.count in self.loaded:  # the discarded first step counts: under contention it is long
                self.spent += seconds
                self.spent_steps += 1
            self.loaded.add(self.count)
        else:
            self.spent += seconds  # all this count's time
            self.spent_steps += 1
            self.samples.add(seconds)
        best = min(self.results.values(), default=None)
        hopeless = best is not None and self.spent > 2 * best * self.tuning.probe_steps
        if not self.samples.full and not hopeless:
            return
        # a hopeless count is priced at all it took (its trimmed mean could hide the waits that made it hopeless)
        self.results[self.queue.pop(0)] = self.spent / self.spent_steps if hopeless else self.samples.mean
        self.samples.clear()
        self.spent, self.spent_steps = 0.0, 0
        if self.queue:
            self._switch(self.queue[0])
        else:
            self._finish_probe()

    def _cost(self, count: int) -> float:
        """A count's step time, raised by ``doubling_gain`` for every doubling of threads: more threads must be
        that much faster to be chosen, and otherwise leave their cores to the other work."""
        return self.results[count] * (1 + self.tuning.doubling_gain) ** math.log2(count)

    def _finish_probe(self) -> None:
        """Keep the cheapest count, unless the one settled on before the probe is within ``margin`` of it."""
        best = min(self.results, key=self._cost)
        before = self.settled_count
        if self._cost(best) >= self._cost(before) * (1 - self.tuning.margin):
            best = before
        self._switch(best)
        self.baseline = self.results[best]
        self.recent.clear()
        self.history.clear()
        self.probed_at = self.clock
        if best != before:
            self.gap = self.tuning.first_interval
        elif self.decisions:
            self.gap = min(2 * self.gap, self.tuning.interval)
        self.decisions.append((self.clock, best))


class FixedThreads:
    """No governing: the count stays as set (pinned, a single core, or a GPU backend)."""

    def step_done(self, seconds: float) -> None:
        """Nothing to decide."""


_governor: tuple[threads.ThreadSetting, ThreadGovernor] | None = None
"""The process's governor and the thread setting it governs (a new setting gets a new governor)."""


def for_backend(backend: Any) -> ThreadGovernor | FixedThreads:
    """The governor of training on ``backend``: the process's one ThreadGovernor on the CPU under ``auto`` with
    more than one thread (it keeps what it learnt from one ``fit`` to the next), else a FixedThreads."""
    global _governor
    setting = threads.setting()
    if not backend.host_threads or setting.pinned or setting.count < 2:
        return FixedThreads()
    if _governor is None or _governor[0] is not setting:
        _governor = (setting, ThreadGovernor(setting.count, threads.pools().set))
    return _governor[1]
