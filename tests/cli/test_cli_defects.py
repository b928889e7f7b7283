"""What a new user tripped over on the command line (issue 24): each case one clear line before any work, or the
output the user asked for."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from cli_helpers import blobs_csv, one_error, run
from PIL import Image

import xpnet
from xpnet.cli import main
from xpnet.run import stop_on_sigint
from xpnet.trainer import StopFlag

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DEVICE", "cpu")


def colour_folder(root: Path, per_class: int, first: int = 0) -> Path:
    """Two classes of small solid images, red-ish and blue-ish, numbered from ``first``."""
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(first, first + per_class):
            Image.new("RGB", (8, 6), tuple(min(255, c + 3 * i) for c in colour)).save(root / name / f"{i}.png")
    return root


def test_evaluate_scores_every_image_of_a_new_folder_and_the_held_out_ones_of_the_training_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trained_on = colour_folder(tmp_path / "train", 10)
    model = tmp_path / "m.npz"
    status, _, err = run(capsys, "train", "images", trained_on, "--epochs", "2", "--quiet", "--save", model)
    assert status == 0, err
    status, out, err = run(capsys, "evaluate", model, trained_on)
    assert status == 0 and out.startswith("held-out accuracy") and "on 4 samples" in out, err
    moved = tmp_path / "moved"
    shutil.copytree(trained_on, moved)  # the same images elsewhere: still the training folder
    assert run(capsys, "evaluate", model, moved)[1] == out
    new = colour_folder(tmp_path / "new", 6, first=20)
    status, out, err = run(capsys, "evaluate", model, new)
    assert status == 0 and out.startswith("test accuracy") and "on 12 samples" in out, err


def test_plot_without_matplotlib_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    status, out, err = run(capsys, "train", "csv", blobs_csv(tmp_path / "t.csv", 60), "--label", "kind",
                           "--save", tmp_path / "m.npz", "--plot", tmp_path / "curves.png")
    assert "matplotlib" in one_error(status, err) and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_plot_writes_the_format_its_suffix_names_or_refuses_it(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = blobs_csv(tmp_path / "t.csv", 60)
    status, _, err = run(capsys, "train", "csv", data, "--label", "kind", "--epochs", "1", "--quiet",
                         "--plot", tmp_path / "curves.jpg")
    assert status == 0, err
    for name in ("curves.jpg", "curves-confusion.jpg"):
        assert (tmp_path / name).read_bytes()[:3] == b"\xff\xd8\xff", name  # JPEG, not PNG
    message = one_error(*run(capsys, "train", "csv", data, "--label", "kind", "--plot", tmp_path / "c.gif")[::2])
    assert "--plot" in message and ".gif" in message and ".png" in message
    assert not (tmp_path / "c.gif").exists()


def test_a_non_image_file_in_a_class_folder_is_one_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = colour_folder(tmp_path / "f", 6)
    (folder / "red" / "notes.txt").write_text("not an image")
    status, _, err = run(capsys, "train", "images", folder, "--epochs", "1", "--quiet")
    assert status == 0, err
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(err.splitlines()) == 1 and "notes.txt" in err and "Warning" not in err


def test_a_four_row_csv_is_too_few_for_the_splits_before_anything_else(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "train", "csv", blobs_csv(tmp_path / "four.csv", 4), "--label", "kind")
    message = one_error(status, err)
    assert "four.csv" in message and "too few samples for the test and validation split" in message
    assert out == ""


def test_export_to_a_folder_or_under_a_file_is_one_clear_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.npz"
    xpnet.mlp([4, 3, 2], seed=0).save(model)
    (tmp_path / "folder").mkdir()
    assert "this is a folder; give a file name" in one_error(*run(capsys, "export", model, tmp_path / "folder")[::2])
    message = one_error(*run(capsys, "export", model, model / "out.onnx")[::2])
    assert f"{model} is a file, not a folder" in message and ".tmp" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "m.npz"]


@pytest.mark.parametrize(("rank", "lines"), [("0", 1), ("1", 0)])
def test_rank_0_alone_prints_the_error_every_rank_meets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], rank: str,
                                                        lines: int) -> None:
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", rank)
    status, _, err = run(capsys, "train", "csv", tmp_path / "missing.csv", "--label", "kind")
    assert status == 2 and len(err.splitlines()) == lines, err


def test_a_csv_model_given_an_image_says_it_needs_csv_rows(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.npz"
    status, _, err = run(capsys, "train", "csv", blobs_csv(tmp_path / "t.csv", 60), "--label", "kind",
                         "--epochs", "1", "--quiet", "--save", model)
    assert status == 0, err
    digit = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(digit)
    message = one_error(*run(capsys, "predict", model, digit)[::2])
    assert "digit.png" in message and "csv model predicts on CSV rows, not images" in message


@pytest.mark.parametrize(("rank", "lines"), [("0", 2), ("3", 0)])
def test_rank_0_alone_prints_the_interrupt_notice(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], rank: str, lines: int) -> None:
    monkeypatch.setenv("PMI_RANK", rank)
    stop = StopFlag()
    with stop_on_sigint(stop):
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.requested and len(capsys.readouterr().err.splitlines()) == lines


def test_xpnet_bench_leaves_sys_path_alone(capsys: pytest.CaptureFixture[str]) -> None:
    before = list(sys.path)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("usage: xpnet bench")
    assert sys.path == before
