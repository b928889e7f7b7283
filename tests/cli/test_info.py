"""``xpnet info`` (issue 24, defect 12): a checkpoint folder is described by its newest checkpoint, and a device
that ``$XPNET_DEVICE`` asks for but cannot be used is part of the report, not a failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error, run

from xpnet import Dense, Sequential
from xpnet.backend import BACKENDS
from xpnet.checkpoint import save_checkpoint


def _trained_checkpoints(folder: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.integers(0, 2, 32)
    model = Sequential([Dense(2, input_dim=3, activation="softmax")], device="cpu", seed=0, class_names=["a", "b"])
    for _ in range(2):
        history = model.fit(x, y, epochs=(model.position.epoch if model.position else 0) + 1, verbose=0,
                            history=None if model.trainer is None else model.trainer.history,
                            position=model.position)
        save_checkpoint(folder, model, history, {})


def test_info_on_a_checkpoint_folder_describes_its_newest_checkpoint(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _trained_checkpoints(tmp_path / "ckpt")
    status, out, _ = run(capsys, "info", tmp_path / "ckpt")
    assert status == 0
    assert f"newest checkpoint: {tmp_path / 'ckpt' / 'checkpoint-e00002-b0000000.npz'}" in out
    assert "classes: a, b; trained 2 steps" in out


def test_info_on_a_folder_without_checkpoints_is_one_clear_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "info", tmp_path)
    assert "a folder without checkpoints" in one_error(status, err)


@pytest.mark.parametrize("device", sorted(BACKENDS), ids=lambda name: f"{name} off")
def test_info_reports_an_unusable_device_asked_for_and_succeeds(device: str, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DEVICE", device)
    monkeypatch.setattr(BACKENDS[device], "problem", classmethod(lambda cls: "switched off by the test"))
    status, out, err = run(capsys, "info")
    assert status == 0 and "error" not in err
    assert f"{device}: not usable (switched off by the test)" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"default device: {device} (from $XPNET_DEVICE), not usable: ") and "switched off" in last
