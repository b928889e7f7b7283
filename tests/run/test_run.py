"""One command-line training run (``xpnet.run``): the epochs and learning rate a resumed run takes from its
checkpoint, and what a saved model says about its rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cli_helpers import run

from xpnet.archive import read_archive, write_archive
from xpnet.backend import Backend, get_backend
from xpnet.builders import mlp
from xpnet.model import Model
from xpnet.run import RunResult, run_training
from xpnet.serialization import load_model, save_model
from xpnet.tasks import TaskData

SETTINGS = {"task": "blobs", "epochs": 3, "batch_size": 16, "seed": 7, "lr": 1e-2, "schedule": "cosine"}


def _task() -> TaskData:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((96, 8)), rng.integers(0, 4, 96)
    return TaskData(x[:64], y[:64], x[64:], y[64:], ["a", "b", "c", "d"], {"type": "custom"})


def _backend() -> Backend:
    return get_backend("cpu", "float64", seed=3)


def _build() -> Model:
    return mlp([8, 16, 4], "relu", optimizer="adam", lr=SETTINGS["lr"], backend=_backend())


def _train(directory: Path, resume: bool = False, given: tuple[str, ...] = (), **settings: Any) -> RunResult:
    return run_training(_task(), _build, {**SETTINGS, **settings}, checkpoint_dir=str(directory), resume=resume,
                        given=given, backend=_backend(), verbose=0, log=lambda message: None)


def test_resume_without_epochs_keeps_the_checkpoints_epoch_count(tmp_path: Path) -> None:
    _train(tmp_path, epochs=2)
    # the command line's default --epochs (10) arrives in the settings, but the user did not give it
    again = _train(tmp_path, resume=True, epochs=10)
    assert again.history.epoch == [1, 2]
    further = _train(tmp_path, resume=True, given=("epochs",), epochs=3)
    assert further.history.epoch == [1, 2, 3]


def test_the_optimizer_keeps_the_configured_rate_and_info_shows_it_with_the_schedule(tmp_path: Path, capsys) -> None:
    result = _train(tmp_path / "checkpoints")
    optimizer = result.model.optimizer
    assert optimizer.lr == 1e-2 and optimizer.rate(3.0) == 0.0  # the rate decays; the configured one stays
    path = save_model(result.model, tmp_path / "model.npz")
    assert load_model(path).optimizer.config() == optimizer.config()
    status, out, _ = run(capsys, "info", path)
    assert status == 0 and "optimizer adam (lr 0.01, cosine over 3 epochs)" in out


def _as_written_before_format_3(path: Path, last_rate: float) -> None:
    """Rewrite a checkpoint at an epoch's end as xpnet 0.2 wrote it: format 2, the optimizer's ``lr`` the last
    step's decayed rate with no schedule, and the generator's state beside the position instead of in it."""
    metadata, arrays = read_archive(path)
    optimizer = metadata["model"]["optimizer"]
    del optimizer["schedule"]
    optimizer["lr"] = last_rate
    training = metadata["training"]
    assert training["position"]["batch"] == 0 and training["shuffle_rng"] == training["position"]["rng_state"]
    training["position"]["rng_state"] = None
    write_archive(path, arrays, {**metadata, "format_version": 2})


def test_a_checkpoint_written_before_format_3_resumes_exactly(tmp_path: Path) -> None:
    straight = _train(tmp_path / "straight")
    _train(tmp_path / "stopped")
    (tmp_path / "stopped" / "checkpoint-e00003-b0000000.npz").unlink()
    old = tmp_path / "stopped" / "checkpoint-e00002-b0000000.npz"
    steps = 4  # 64 samples in batches of 16
    last_rate = straight.model.optimizer.rate(2 - 1 / steps)
    _as_written_before_format_3(old, last_rate)
    resumed = _train(tmp_path / "stopped", resume=True)
    assert resumed.history.epoch == [1, 2, 3]
    np.testing.assert_array_equal(resumed.model.get_parameters(), straight.model.get_parameters())
    assert resumed.model.optimizer.lr == 1e-2
