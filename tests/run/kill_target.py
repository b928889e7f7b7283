"""A fork server of training runs for the SIGKILL test in ``test_reliability.py``.

Starting Python, NumPy and Numba's cached kernels costs over a second a process, too slow for dozens of kills;
so this process imports and warms everything once, then forks one training run per command read from stdin:

    train DIR EPOCHS fresh|resume [K BYTES]
        fork a child running ``run_training`` with a checkpoint every epoch in DIR; with K and BYTES, the child
        stops itself (SIGSTOP) in its K-th checkpoint write once BYTES bytes of it are in the temporary file
    quit
        exit

It prints ``started PID`` for each child, then ``exited STATUS`` once the child is gone (``-9`` after
SIGKILL). The child prints ``epoch E checkpointed`` once the checkpoint of epoch E is written, ``stopped``
just before it stops in the middle of a checkpoint write (for the test to kill it there, at a byte of its
choosing however busy the machine is), and ``done E`` when training has finished. Every line is written at once.
"""

from __future__ import annotations

import faulthandler
import itertools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

import xpnet.archive as archive
import xpnet.run as cli_run
from xpnet.backend import get_backend
from xpnet.builders import mlp
from xpnet.checkpoint import save_checkpoint
from xpnet.fileio import atomic_write
from xpnet.model import Model
from xpnet.tasks import TaskData
from xpnet.trainer import History

SIZES = [32, 512, 512, 4]
"""About 280,000 float64 parameters plus Adam's moments: a 6.8 MB checkpoint, so writes take a while."""


def say(line: str) -> None:
    """Write one line to stdout unbuffered, so lines from the server and its children never interleave."""
    os.write(1, (line + "\n").encode())


def task() -> TaskData:
    """A tiny seeded classification task: two steps an epoch, so checkpoints are written back to back."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((96, SIZES[0])), rng.integers(0, SIZES[-1], 96)
    return TaskData(x[:64], y[:64], x[64:], y[64:], ["a", "b", "c", "d"], {"type": "custom"})


BACKEND = get_backend("cpu", "float64", seed=3)


def build() -> Model:
    return mlp(SIZES, "relu", optimizer="adam", lr=1e-3, backend=BACKEND)


def marked_save(directory: str | Path, model: Model, history: History, settings: dict[str, Any]) -> Path:
    """``save_checkpoint``, saying when the checkpoint is written."""
    path = save_checkpoint(directory, model, history, settings)
    say(f"epoch {model.position.epoch} checkpointed")
    return path


class StoppingFile:
    """A checkpoint's temporary file that stops this process once ``stop_at`` bytes are in it (after saying
    ``stopped``); everything else is the file's own."""

    def __init__(self, handle: IO[bytes], stop_at: int) -> None:
        self.handle, self.stop_at = handle, stop_at

    def write(self, data: bytes) -> int:
        cut = self.stop_at - self.handle.tell()
        if 0 <= cut < len(data):
            self.handle.write(data[:cut])
            self.handle.flush()
            say("stopped")
            os.kill(os.getpid(), signal.SIGSTOP)
            self.handle.write(data[cut:])
            return len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def stopping_writes(write: int, stop_at: int) -> Callable[..., Any]:
    """``atomic_write`` for the archive module: its ``write``-th file (a checkpoint) stops at byte ``stop_at``."""
    writes = itertools.count(1)

    @contextmanager
    def atomic(path: str | Path, mode: str = "wb") -> Iterator[IO[bytes]]:
        with atomic_write(path, mode) as handle:
            yield StoppingFile(handle, stop_at) if next(writes) == write else handle

    return atomic


def child(directory: str, epochs: int, resume: bool, stop: list[int]) -> None:
    """One training run, as ``xpnet train --checkpoint-dir DIR [--resume]`` does it, stopping in a checkpoint write
    where ``stop`` ([K, BYTES], or empty) says; SIGUSR1 prints every thread's Python stack to stderr (for the test
    to say where a stuck child stood)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    cli_run.save_checkpoint = marked_save
    if stop:
        archive.atomic_write = stopping_writes(*stop)
    settings = {"task": "kill", "epochs": epochs, "batch_size": 32, "seed": 7}
    result = cli_run.run_training(task(), build, settings, checkpoint_dir=directory, resume=resume,
                                  given={"epochs"}, backend=BACKEND, verbose=0, log=lambda message: None)
    say(f"done {result.model.position.epoch}")


def main() -> None:
    warm = task()
    # compile or load every kernel once, before forking
    build().fit(warm.x_train, warm.y_train, epochs=1, batch_size=32, verbose=0)
    say("ready")
    for line in sys.stdin:
        command, *args = line.split()
        if command == "quit":
            return
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                child(args[0], int(args[1]), args[2] == "resume", [int(arg) for arg in args[3:]])
            except BaseException:
                traceback.print_exc()
                status = 1
            os._exit(status)
        say(f"started {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exited {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    main()
