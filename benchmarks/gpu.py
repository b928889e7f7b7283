"""``python -m benchmarks --sections gpu``: the one prepared run on a CUDA machine, every part bounded in time.

Parts, in order, each with its own budget (``BUDGETS``, 8 minutes together): the ``gpu``-marked tests with
``XPNET_REQUIRE_GPU=1``; MNIST (MLP, CNN) and the fruits trained on the GPU; the MNIST epoch and the CLI's CNN
epoch against PyTorch; the wide-MLP step against the 2-core CPU's committed figure; each fused kernel's GB/s
against copy bandwidth; per-launch and per-step host time. A part that fails or runs out of time records its
error (with what it measured before) and the next part still runs.

``--rehearse`` (no GPU; Numba's CUDA simulator) runs every part on tiny sizes: the fused CUDA kernels under the
simulator on NumPy arrays, the rest on the CPU backend (the GPU backend needs CuPy), the tests collected only.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numba

from benchmarks.config import Config
from benchmarks.timing import log
from xpnet.tasks import TaskData

BUDGETS = {"tests": 120, "training": 100, "mnist_epoch": 50, "cnn_epoch": 45, "wide_mlp": 15, "kernels": 90,
           "launch_overhead": 15}
"""Seconds each part may take; a part still running at its limit is stopped."""
TOTAL_BUDGET = 450
"""Seconds from the process's start (``STARTED``: the start-up compiles the CUDA kernels) to the end of the last
part: a part starting later gets only what is left of this. With the charts, the run fits 8 minutes."""
STARTED = time.monotonic()
"""When ``python -m benchmarks`` imported this module, at its start."""
MIN_PART_SECONDS = 5
REHEARSAL_SAMPLES = 1024
REHEARSAL_NOTE = ("rehearsal without a GPU: CuPy is absent, so the GPU backend cannot run; the parts ran on the "
                  "CPU backend (NumPy) at tiny sizes, the fused CUDA kernels under Numba's simulator on NumPy "
                  "arrays, the tests were only collected. No figure here is a GPU measurement.")


CUPY_NEEDED = "the GPU backend needs CuPy (absent): ran on the CPU backend (NumPy) at tiny sizes"
SIMULATED = ("the fused CUDA kernels ran under Numba's simulator on NumPy arrays; their references (CuPy on a "
             "GPU) ran on NumPy")
REHEARSED = {"tests": "collected only: running them needs a GPU with CuPy", "training": CUPY_NEEDED,
             "mnist_epoch": CUPY_NEEDED, "cnn_epoch": CUPY_NEEDED, "wide_mlp": CUPY_NEEDED, "kernels": SIMULATED,
             "launch_overhead": f"{SIMULATED}; the training steps: {CUPY_NEEDED}"}
"""What each part did instead in a rehearsal, and what it needs to do the real thing."""


class PartTimeout(Exception):
    """A part ran past its budget."""


@dataclass
class GpuRun:
    """What every part reads: the suite's config, the device it measures, its budget and the cached MNIST."""

    config: Config
    rehearse: bool
    budget: float = 0.0
    _mnist: TaskData | None = field(default=None, repr=False)

    @property
    def device(self) -> str:
        """xpnet's device name for the measured backend: "gpu", or "cpu" in a rehearsal (no CuPy)."""
        return "cpu" if self.rehearse else "gpu"

    @property
    def torch_device(self) -> str:
        return "cpu" if self.rehearse else "cuda"

    def on(self, repeats: int, warmup: int = 1) -> Config:
        """The suite's config measuring only this run's device, with ``repeats`` timed runs (1 in a rehearsal)."""
        return replace(self.config, devices=[self.device], repeats=1 if self.rehearse else repeats,
                       warmup=warmup, notes=[])

    def mnist(self) -> TaskData:
        """MNIST, loaded once for all parts (its first ``REHEARSAL_SAMPLES`` training and test images in a
        rehearsal)."""
        if self._mnist is None:
            task = self.config.mnist()
            if self.rehearse:
                task.x_train, task.y_train = task.x_train[:REHEARSAL_SAMPLES], task.y_train[:REHEARSAL_SAMPLES]
                task.x_test, task.y_test = task.x_test[:REHEARSAL_SAMPLES], task.y_test[:REHEARSAL_SAMPLES]
            self._mnist = task
        return self._mnist


def use_simulator() -> None:
    """Run Numba's CUDA kernels under its simulator (before ``numba.cuda`` is first imported), for a rehearsal."""
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    numba.core.config.reload_config()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``PartTimeout`` in this (main) thread once ``seconds`` have passed inside the block."""

    def expire(signum: int, frame: Any) -> None:
        raise PartTimeout(f"stopped at its {seconds:.0f} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_part(name: str, part: Callable[[GpuRun, dict[str, Any]], None], run: GpuRun) -> dict[str, Any]:
    """``part`` filling a fresh result, within ``run.budget`` seconds; on an error or timeout, what it had filled
    in so far plus the error."""
    log(f"gpu: {name} (budget {run.budget:.0f} s)")
    result: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        with time_limit(run.budget):
            part(run, result)
        status: dict[str, Any] = {"status": "ok"}
    except Exception as exc:  # recorded, so that one broken part does not stop the others
        traceback.print_exc()
        status = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    rehearsed = {"rehearsal": REHEARSED[name]} if run.rehearse and name in REHEARSED else {}
    return {**status, **rehearsed, "seconds": round(time.perf_counter() - started, 1), "budget_s": round(run.budget),
            **result}


def parts() -> dict[str, Callable[[GpuRun, dict[str, Any]], None]]:
    from benchmarks import gpu_checks, gpu_timing

    return {"tests": gpu_checks.tests, "training": gpu_checks.training, "mnist_epoch": gpu_timing.mnist_epoch,
            "cnn_epoch": gpu_timing.cnn_epoch, "wide_mlp": gpu_timing.wide_mlp, "kernels": gpu_timing.kernel_bandwidth,
            "launch_overhead": gpu_timing.launch_overhead}


def run(config: Config) -> dict[str, Any]:
    """Every part in order within its budget and the section's; the results of each, or why it did not run."""
    if config.rehearse:
        use_simulator()
    gpu_run = GpuRun(config, config.rehearse)
    results: dict[str, Any] = {}
    for name, part in parts().items():
        left = TOTAL_BUDGET - (time.monotonic() - STARTED)
        if left < MIN_PART_SECONDS:
            results[name] = {"status": "not run", "reason": f"the run's {TOTAL_BUDGET} s budget was spent"}
            continue
        gpu_run.budget = min(BUDGETS[name], left)
        results[name] = run_part(name, part, gpu_run)
        log(f"gpu: {name} result {json.dumps(results[name], default=str)}")  # kept in the log if the run is killed
    notes = [f"budgets (s): {BUDGETS}, {TOTAL_BUDGET} s in all"]
    if config.rehearse:
        notes.insert(0, REHEARSAL_NOTE)
    return {"parts": results, "rehearsal": config.rehearse, "notes": notes}
