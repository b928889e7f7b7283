"""The task registry: every job implements one protocol, the command line loops over ``TASKS`` (a new job is one
module and one entry), and a saved model finds its job, or says how a Python-built model gets one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import one_error, run
from PIL import Image

import xpnet
from xpnet.cli import build_parser
from xpnet.data.table import csv_columns, scan_csv
from xpnet.errors import DataError, ModelFileError
from xpnet.serialization import load_model
from xpnet.tasks import TASKS, Task, TaskData, task_of
from xpnet.tasks import csv as csv_task
from xpnet.tasks import mnist as mnist_task
from xpnet.tasks.base import EvalData, Option
from xpnet.tasks.common import check_training_left, mlp_defaults


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DEVICE", "cpu")


def test_every_task_implements_the_protocol_and_its_options_reach_the_parser() -> None:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # the train subcommand's parser
    dests = {action.dest for action in train._actions}
    assert set(TASKS) == {"mnist", "fruits", "csv", "npz", "images"}
    for name, task in TASKS.items():
        assert task.name == name and "mlp" in task.defaults
        for method in ("load", "test_data", "predict_features"):
            assert getattr(type(task), method) is not getattr(Task, method), (name, method)
        assert {option.dest for option in task.options} <= dests


class _RowsTask(Task):
    """A job added by a test: blobs of 2 features, predicting on text files of rows."""

    name = "rows"
    source = "a text file of rows"
    defaults = {"mlp": mlp_defaults(40, 8, "8", lr=1e-2)}
    options = (Option("centre", "rows: how far apart the classes are", {"type": float}),)
    inputs = "files"

    def load(self, args: argparse.Namespace, backend: Any, seed: int) -> TaskData:
        rng = np.random.default_rng(seed)
        y = np.arange(80) % 2
        x = (rng.normal(size=(80, 2)) + (args.centre or 4.0) * y[:, None]).astype(np.float32)
        return TaskData(x[:60], y[:60], x[60:], y[60:], ["low", "high"], {"job": "rows"})

    def test_data(self, model: Any, data: str | None, data_dir: str | None) -> EvalData:
        rows = np.loadtxt(str(data), ndmin=2)
        return EvalData(rows[:, :2], rows[:, 2].astype(np.int64))

    def predict_features(self, model: Any, path: Path) -> tuple[list[str], Any]:
        rows = np.loadtxt(path, ndmin=2)[:, :2]
        return [f"{path} row {k}" for k in range(1, len(rows) + 1)], rows


def test_a_new_task_is_one_object_in_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(TASKS, "rows", _RowsTask())
    data = tmp_path / "rows.txt"
    data.write_text("0 0 0\n4 4 1\n")
    model = tmp_path / "rows.npz"
    status, out, err = run(capsys, "train", "rows", str(data), "--centre", "5", "--quiet", "--save", model)
    assert status == 0 and "accuracy" in out, err
    status, out, err = run(capsys, "evaluate", model, data)
    assert status == 0 and out.startswith("test accuracy") and "on 2 samples" in out, err
    status, out, err = run(capsys, "predict", model, data)
    lines = out.splitlines()
    assert status == 0 and lines[0].startswith(f"{data} row 1: low (") and lines[1].startswith(f"{data} row 2: high (")
    assert "--centre applies to xpnet train rows, not csv" in one_error(
        *run(capsys, "train", "csv", str(data), "--centre", "1")[::2])


def test_a_model_finds_its_task_by_job_or_by_older_type() -> None:
    assert task_of({"job": "images", "type": "hue_histogram"}) is TASKS["images"]
    assert task_of({"type": "hue_histogram"}) is TASKS["fruits"]  # saved before models named their job
    assert task_of({"type": "arrays"}) is TASKS["npz"] and task_of(mnist_task.preprocessing()) is TASKS["mnist"]
    with pytest.raises(ModelFileError, match="has no preprocessing") as raised:
        task_of({})
    assert "preprocessing=xpnet.tasks.mnist.preprocessing()" in str(raised.value.hint)


def _digit(tmp_path: Path) -> Path:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[7:21, 12:16] = 255  # a "1" of MNIST's framing: 14 pixels tall, centred
    pixels[9:11, 10:12] = 180
    Image.fromarray(pixels).save(tmp_path / "one.png")
    return tmp_path / "one.png"


def test_a_python_model_gets_the_cli_preprocessing_or_is_told_how(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    digit = _digit(tmp_path)
    bare = xpnet.mlp([784, 16, 10], seed=0)
    bare.save(tmp_path / "bare.npz")
    message = one_error(*run(capsys, "predict", tmp_path / "bare.npz", digit)[::2])
    assert "no preprocessing" in message and "preprocessing=xpnet.tasks.mnist.preprocessing()" in message
    ready = xpnet.mlp([784, 16, 10], seed=0, preprocessing=xpnet.tasks.mnist.preprocessing())
    ready.save(tmp_path / "ready.npz")
    status, out, err = run(capsys, "predict", tmp_path / "ready.npz", digit)
    assert status == 0 and out.startswith(f"{digit}: "), err
    assert load_model(tmp_path / "ready.npz", device="cpu").preprocessing["type"] == "mnist"


def test_a_28x28_digit_keeps_its_mnist_framing(tmp_path: Path) -> None:
    digit = _digit(tmp_path)
    features = mnist_task.image_features(mnist_task.preprocessing(), [digit])
    np.testing.assert_array_equal(features[0], np.asarray(Image.open(digit)).reshape(-1) / np.float32(255))
    dark_on_light = tmp_path / "inverted.png"
    Image.fromarray(255 - np.asarray(Image.open(digit))).save(dark_on_light)
    np.testing.assert_array_equal(mnist_task.image_features(mnist_task.preprocessing(), [dark_on_light]), features)


def test_an_empty_label_cell_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,kind\n1,2,x\n3,4,\n5,6,y\n")
    with pytest.raises(DataError, match=r"line 3: empty label"):
        csv_task.load_task(path, "kind")
    columns, _, start = csv_columns(path, "kind", True)
    with pytest.raises(DataError, match=r"line 3: empty label"):
        scan_csv(columns, start, 10, 10)


def test_too_few_samples_for_the_validation_split() -> None:
    y = np.array([0, 1])
    task = TaskData(np.zeros((2, 3)), y, np.zeros((2, 3)), y, ["a", "b"], {})
    with pytest.raises(DataError, match="too few samples for the test and validation split"):
        check_training_left(task, 0.1, 0, "four.csv")
    check_training_left(task, 0.0, 0, "four.csv")  # no validation split: one sample of each class trains
    more = np.arange(40) % 2
    check_training_left(TaskData(np.zeros((40, 3)), more, None, None, ["a", "b"], {}), 0.1, 0, "forty.csv")
