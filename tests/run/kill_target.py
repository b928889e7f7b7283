"""A fork server of training runs for the SIGKILL test in ``test_reliability.py``.

Starting Python, NumPy and Numba's cached kernels costs over a second a process, too slow for dozens of kills;
so this process imports and warms everything once, then forks one training run per command read from stdin:

    train DIR EPOCHS fresh|resume   fork a child running ``run_training`` with a checkpoint every epoch in DIR
    quit                            exit

It prints ``started PID`` for each child, then ``exited STATUS`` once the child is gone (``-9`` after
SIGKILL). The child prints ``writing E`` just before it writes the checkpoint of epoch E, ``epoch E
checkpointed`` once it is written, and ``done E`` when training has finished. Every line is written at once.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

import xpnet.run as cli_run
from xpnet.backend import get_backend
from xpnet.builders import mlp
from xpnet.checkpoint import save_checkpoint
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
    """``save_checkpoint`` with markers around the write, for the test to time its kills by."""
    epoch = model.position.epoch
    say(f"writing {epoch}")
    path = save_checkpoint(directory, model, history, settings)
    say(f"epoch {epoch} checkpointed")
    return path


def child(directory: str, epochs: int, resume: bool) -> None:
    """One training run, as ``xpnet train --checkpoint-dir DIR [--resume]`` does it."""
    cli_run.save_checkpoint = marked_save
    settings = {"task": "kill", "epochs": epochs, "batch_size": 32, "seed": 7}
    result = cli_run.run_training(task(), build, settings, checkpoint_dir=directory, resume=resume, given={"epochs"},
                                   backend=BACKEND, verbose=0, log=lambda message: None)
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
                child(args[0], int(args[1]), args[2] == "resume")
            except BaseException:
                traceback.print_exc()
                status = 1
            os._exit(status)
        say(f"started {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exited {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    main()
