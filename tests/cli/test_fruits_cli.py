"""The fruits task end to end through the ``xpnet`` command: train, evaluate, predict, and bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet.data.fruits import DEFAULT_CLASSES

RESULT = re.compile(r"^(held-out|test) accuracy ([0-9.]+)%")
PREDICTION = re.compile(r"^(.+): (.+) \(([0-9.]+)%\)$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def xpnet(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpnet", *map(str, args)], env=env, capture_output=True, text=True, timeout=120
    )


def result(process: subprocess.CompletedProcess[str]) -> tuple[str, float]:
    """The split name and accuracy (%) of a command's last output line."""
    assert process.returncode == 0, process.stderr
    match = RESULT.match(process.stdout.strip().splitlines()[-1])
    assert match, process.stdout
    return match[1], float(match[2])


def assert_usage_error(process: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and one ``xpnet: error:`` line naming ``words``, without a traceback."""
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: "), process.stderr
    assert all(word in lines[0] for word in words), lines[0]


def link_images(source: Path, target: Path, files: list[Path]) -> None:
    target.mkdir(parents=True)
    for path in files:
        (target / path.name).symlink_to(source / path.name)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every command: the feature cache goes to a fresh folder."""
    return {**os.environ, "XPNET_DATA": str(tmp_path_factory.mktemp("xpnet-data"))}


@pytest.fixture(scope="module")
def trained(shared_data: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default fruits run on the shared subset, saved and plotted."""
    out = tmp_path_factory.mktemp("fruits-run")
    process = xpnet("train", "fruits", "--data-dir", shared_data, "--quiet", "--save", out / "model.npz",
                    "--plot", out / "curves.png", env=env)
    return {"process": process, "model": out / "model.npz", "out": out}


def test_train_reaches_the_tutorial_accuracy(trained: dict) -> None:
    split, accuracy = result(trained["process"])
    assert split == "held-out"
    assert accuracy >= 99.0
    for name in ("model.npz", "curves.png", "curves-hues.png", "curves-confusion.png"):
        assert (trained["out"] / name).stat().st_size > 0
    for name in ("curves.png", "curves-hues.png", "curves-confusion.png"):
        assert (trained["out"] / name).read_bytes()[:8] == PNG_MAGIC


def test_evaluate_rebuilds_the_held_out_split(trained: dict, shared_data: Path, env: dict[str, str]) -> None:
    # the fruits-360 folder itself works as well as the data folder holding it
    evaluated = xpnet("evaluate", trained["model"], "--data-dir", shared_data / "fruits-360", env=env)
    assert result(evaluated) == result(trained["process"])
    assert "on 98 samples" in evaluated.stdout  # 20% of 124, 122, 121, 123 images


def test_predict_prints_one_line_per_image(trained: dict, shared_data: Path, env: dict[str, str]) -> None:
    training = shared_data / "fruits-360" / "Training"
    images = [path for name in DEFAULT_CLASSES for path in sorted((training / name).iterdir())[:2]]
    process = xpnet("predict", trained["model"], *images, env=env)
    assert process.returncode == 0, process.stderr
    lines = process.stdout.strip().splitlines()
    assert len(lines) == len(images)
    correct = 0
    for line, image in zip(lines, images, strict=True):
        match = PREDICTION.match(line)
        assert match, line
        assert match[1] == str(image) and match[2] in DEFAULT_CLASSES and 0 <= float(match[3]) <= 100
        correct += match[2] == image.parent.name
    assert correct >= len(images) - 1


def test_test_folder_is_the_test_split(shared_data: Path, env: dict[str, str], tmp_path: Path) -> None:
    training = shared_data / "fruits-360" / "Training"
    for name in ("Mango", "Raspberry"):
        files = sorted((training / name).iterdir())
        link_images(training / name, tmp_path / "Training" / name, files[:30])
        link_images(training / name, tmp_path / "Test" / name, files[30:40])
    model = tmp_path / "model.npz"
    trained = xpnet("train", "fruits", "--data-dir", tmp_path, "--quiet", "--epochs", "5", "--save", model,
                    env=env)
    assert result(trained)[0] == "test"
    evaluated = xpnet("evaluate", model, "--data-dir", tmp_path, env=env)
    assert result(evaluated) == result(trained)
    assert "on 20 samples" in evaluated.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--classes", "Mango"], ["--data-dir"]),
        (["--data-dir", "{tmp}/nowhere"], ["nowhere", "does not exist"]),
        (["--data-dir", "{shared}", "--classes", "Mango,Kiwi"], ["'Kiwi'", "Mango"]),
        (["--data-dir", "{tmp}/plain"], ["Empty", "no image files"]),
    ],
    ids=["no-data-dir", "missing-folder", "unknown-class", "empty-class-folder"],
)
def test_train_rejects_bad_data(
    args: list[str], words: list[str], shared_data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    mango = shared_data / "fruits-360" / "Training" / "Mango"
    link_images(mango, tmp_path / "plain" / "Mango", sorted(mango.iterdir())[:3])
    (tmp_path / "plain" / "Empty").mkdir()
    args = [arg.format(tmp=tmp_path, shared=shared_data) for arg in args]
    assert_usage_error(xpnet("train", "fruits", "--quiet", "--epochs", "1", *args, env=env), *words)


def test_predict_rejects_a_non_image(trained: dict, env: dict[str, str], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a fruit\n")
    assert_usage_error(xpnet("predict", trained["model"], notes, env=env), str(notes))
