"""Per-epoch progress: one line per epoch to a file or pipe; on a terminal no time remaining until a step is done."""

from __future__ import annotations

import io
import time

import pytest

from xpnet import progress
from xpnet.progress import EpochProgress

LOGS = {"loss": 0.5, "accuracy": 0.75, "time": 1.0, "val_loss": 0.6, "val_accuracy": 0.7}


class Terminal(io.StringIO):
    """What tqdm writes to a terminal, kept as text."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: no epoch has finished, so the kernels still have to compile."""
    monkeypatch.setattr(progress, "_compiled", False)


def test_a_pipe_gets_one_line_per_epoch(fresh_process: None) -> None:
    out = io.StringIO()
    for epoch in (1, 2):
        bar = EpochProgress(epoch, 2, 10, enabled=True, file=out)
        for step in range(1, 11):
            bar.update(step, 0.5, 0.75)
        bar.finish(LOGS)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2, out.getvalue()
    assert lines[0].startswith("epoch 1/2: loss=0.5000 acc=0.7500 val_loss=0.6000 val_acc=0.7000 (10 steps, ")
    assert "with the kernel compile" in lines[0] and "compile" not in lines[1]


def test_a_terminal_says_compiling_kernels_and_starts_the_clock_at_the_first_step(fresh_process: None) -> None:
    out = Terminal()
    bar = EpochProgress(1, 1, 100, enabled=True, file=out)
    assert "epoch 1/1: compiling kernels" in out.getvalue()
    time.sleep(0.5)  # the first step compiles: it must not count towards the time remaining
    bar.update(1, 2.3, 0.1)
    shown = out.getvalue().split("\r")[-1]
    assert "1/100" in shown and "<?" in shown, shown  # no rate yet: no "42:17 remaining" from the compile
    bar.finish(LOGS)
    assert "val_acc=0.7000" in out.getvalue().split("\r")[-1]


def test_a_regression_bar_shows_no_accuracy(fresh_process: None) -> None:
    out = Terminal()
    bar = EpochProgress(1, 1, 2, enabled=True, file=out)
    bar.update(1, 0.25, None)
    bar.update(2, 0.25, None)
    bar.finish({"loss": 0.25, "time": 1.0, "val_loss": 0.3, "val_mse": 0.3, "val_mae": 0.4})
    assert "acc" not in out.getvalue() and "val_mae=0.4000" in out.getvalue()
