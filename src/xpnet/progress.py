"""Per-epoch progress: a tqdm bar on a terminal, one line per epoch to a file or pipe.

The first steps of a process compile the kernels (seconds to a minute). A bar's clock starts at its first
finished step, so that its rate and time remaining count training only; until then it says "compiling kernels".
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

_compiled = False
"""Whether an epoch has finished in this process: its kernels are compiled from then on."""


class EpochProgress:
    """One epoch's progress; a no-op when disabled, so the training loop needs no ``if verbose`` of its own."""

    def __init__(
        self, epoch: int, epochs: int, steps: int, done: int = 0, enabled: bool = True, file: TextIO | None = None
    ) -> None:
        self._enabled, self._file, self._steps = enabled, file or sys.stderr, steps
        self._desc = f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
        self._terminal = enabled and self._file.isatty()
        self._compiling = not _compiled
        self._started = time.perf_counter()
        self._bar: tqdm | None = None
        if self._terminal and self._compiling:
            self._bar = tqdm(total=steps, initial=done, desc=self._desc, bar_format="{desc}: compiling kernels",
                             leave=False, file=self._file)

    def update(self, done: int, loss: float, accuracy: float | None) -> None:
        """Move the bar to ``done`` steps and show the running metrics (accuracy None: a regression model)."""
        if not self._terminal:
            return
        if self._bar is None or self._compiling:  # the first step is done: start the clock now
            self.close()
            self._compiling = False
            self._bar = tqdm(total=self._steps, initial=done, desc=self._desc, unit="step", leave=True,
                             dynamic_ncols=True, mininterval=0.2, file=self._file)
        self._bar.update(done - self._bar.n)
        shown = {"loss": f"{loss:.4f}"} | ({} if accuracy is None else {"acc": f"{accuracy:.4f}"})
        self._bar.set_postfix(shown, refresh=False)

    def finish(self, logs: dict[str, float]) -> None:
        """Show the epoch's final metrics (validation included): on the bar, or as the epoch's one line."""
        global _compiled
        _compiled = True
        if not self._enabled:
            return
        shown = {k.replace("accuracy", "acc"): f"{v:.4f}" for k, v in logs.items() if k != "time"}
        if self._terminal and self._bar is not None:
            self._bar.set_postfix(shown, refresh=True)
            self.close()
            return
        seconds = time.perf_counter() - self._started
        compile_note = ", with the kernel compile" if self._compiling else ""
        metrics = " ".join(f"{k}={v}" for k, v in shown.items())
        print(f"{self._desc}: {metrics} ({self._steps} steps, {seconds:.1f} s{compile_note})", file=self._file,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
