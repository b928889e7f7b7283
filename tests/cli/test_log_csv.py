"""``xpnet train --log-csv FILE`` (issue 24): one row per epoch, continued by ``--resume``, checked before any
training like the other output paths."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli_helpers import blobs_csv, one_error, run


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DEVICE", "cpu")


def epochs_logged(path: Path) -> list[int]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0])[:3] == ["epoch", "loss", "accuracy"] and "val_loss" in rows[0]
    return [int(row["epoch"]) for row in rows]


def test_log_csv_writes_each_epoch_and_a_resume_continues_it(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data, log, checkpoints = blobs_csv(tmp_path / "t.csv", 60), tmp_path / "log.csv", tmp_path / "ckpt"
    train = ("train", "csv", data, "--label", "kind", "--quiet", "--checkpoint-dir", checkpoints, "--log-csv", log)
    status, _, err = run(capsys, *train, "--epochs", "2")
    assert status == 0, err
    assert epochs_logged(log) == [1, 2]
    status, _, err = run(capsys, *train, "--epochs", "4", "--resume")
    assert status == 0, err
    assert epochs_logged(log) == [1, 2, 3, 4]
    status, _, err = run(capsys, "train", "csv", data, "--label", "kind", "--quiet", "--epochs", "1",
                         "--log-csv", log)
    assert status == 0, err
    assert epochs_logged(log) == [1]  # a new run replaces the log


def test_log_csv_into_a_folder_is_refused_before_training(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = blobs_csv(tmp_path / "t.csv", 60)
    status, out, err = run(capsys, "train", "csv", data, "--label", "kind", "--log-csv", tmp_path,
                           "--save", tmp_path / "m.npz")
    assert "--log-csv" in one_error(status, err) and "this is a folder" in err
    assert out == "" and not (tmp_path / "m.npz").exists()
