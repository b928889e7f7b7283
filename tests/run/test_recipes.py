"""``xpnet train`` with the training-recipe flags: the presets parse and build (the tiny CNN under 10,000
parameters), explicit flags override them, the new settings reach the model and resume bit for bit, and (slow) each
recipe holds its accuracy target on MNIST."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import one_error, run

from xpnet.backend import get_backend
from xpnet.cli import _settings, build_parser
from xpnet.errors import ConfigError
from xpnet.optimizers import AdamW, RMSprop
from xpnet.recipes import RECIPES
from xpnet.run import RunResult, run_training, schedule
from xpnet.schedules import Cosine, OneCycle, Warmup
from xpnet.serialization import load_model
from xpnet.tasks import TaskData, build_model


def _mnist_like() -> TaskData:
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 784)), rng.integers(0, 10, 40)
    return TaskData(x[:30], y[:30], x[30:], y[30:], [str(k) for k in range(10)], {"type": "custom"},
                    image_shape=(28, 28, 1))


def _parse(*flags: str) -> tuple[dict[str, Any], set[str]]:
    return _settings(build_parser().parse_args(["train", "mnist", *flags]))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_parses_and_builds(name: str) -> None:
    settings, given = _parse("--recipe", name)
    assert settings["recipe"] == name and "recipe" in given
    model = build_model("mnist", _mnist_like(), settings, get_backend("cpu", "float32", 0))
    assert model.optimizer.name == RECIPES[name].settings["optimizer"]
    assert model.loss.label_smoothing == RECIPES[name].settings["label_smoothing"]
    kinds = {layer.type_name for layer in model.layers}
    assert ("conv2d" in kinds) == (name != "mlp")
    assert ("random_shift" in kinds) == bool(settings["shift"])


def test_the_tiny_cnn_has_at_most_10000_parameters() -> None:
    settings, _ = _parse("--recipe", "tiny-cnn")
    model = build_model("mnist", _mnist_like(), settings, get_backend("cpu", "float32", 0))
    assert 5000 < model.parameter_count <= 10_000


def test_the_mnist_cnn_is_the_cnn_recipe_and_other_jobs_keep_the_plain_network() -> None:
    default, given = _parse("--model", "cnn")
    recipe, _ = _parse("--recipe", "cnn")
    assert given == {"model"} and default == recipe and recipe["model"] == "cnn"
    overridden, _ = _parse("--model", "cnn", "--epochs", "3", "--filters", "8")
    assert (overridden["recipe"], overridden["epochs"], overridden["filters"]) == ("cnn", 3, "8")
    plain, given = _parse("--model", "cnn", "--recipe", "none")
    assert plain["recipe"] is None and plain["optimizer"] == "adam" and plain["filters"] == "32,64"
    model = build_model("mnist", _mnist_like(), plain, get_backend("cpu", "float32", 0))
    assert "batchnorm" not in {layer.type_name for layer in model.layers}


def test_explicit_flags_override_a_recipe() -> None:
    settings, given = _parse("--recipe", "cnn", "--epochs", "3", "--lr", "0.01", "--weight-decay", "0",
                             "--schedule", "cosine", "--warmup", "1", "--filters", "8,16")
    assert (settings["epochs"], settings["lr"], settings["weight_decay"], settings["schedule"], settings["warmup"],
            settings["filters"]) == (3, 0.01, 0.0, "cosine", 1, "8,16")
    assert settings["hidden"] == RECIPES["cnn"].settings["hidden"] and "hidden" not in given
    model = build_model("mnist", _mnist_like(), settings, get_backend("cpu", "float32", 0))
    assert model.optimizer.weight_decay == 0.0 and model.optimizer.lr == 0.01


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--recipe", "mlp", "--model", "cnn"], "trains a --model mlp"),
    (["--weight-decay", "-1"], "--weight-decay -1.0: must be 0 or more"),
    (["--label-smoothing", "1"], "--label-smoothing 1.0: must be in [0, 1)"),
    (["--clip-norm", "0"], "--clip-norm 0.0: must be positive"),
    (["--max-norm", "-3"], "--max-norm -3.0: must be positive"),
    (["--warmup", "20", "--epochs", "5"], "--warmup 20: must be 0 to --epochs (5)"),
])
def test_bad_training_flags_are_refused(flags: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        _parse(*flags)


def test_recipes_are_for_mnist_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 4)), y=np.arange(8) % 2)
    status, _, err = run(capsys, "train", "npz", tmp_path / "d.npz", "--recipe", "mlp")
    assert "--recipe applies to xpnet train mnist, not npz" in one_error(status, err)


def test_the_schedule_flags_build_their_schedules() -> None:
    settings = {"epochs": 10, "schedule": "onecycle", "warmup": 2}
    assert schedule(settings, 50) == Warmup(2, OneCycle(8, 50))
    assert schedule({**settings, "schedule": "cosine", "warmup": 0}, 50) == Cosine(10)
    assert schedule({**settings, "schedule": "constant", "warmup": 0}, 50) is None
    assert schedule({"epochs": 9, "schedule": "step"}, 5).rate(1.0, 3.0) == pytest.approx(0.1)
    assert schedule({"epochs": 4, "schedule": "exponential"}, 5).rate(1.0, 4.0) == pytest.approx(0.01)


SETTINGS = {"task": "blobs", "epochs": 3, "batch_size": 16, "seed": 7, "lr": 1e-2, "schedule": "onecycle",
            "warmup": 1}


def _task() -> TaskData:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((96, 8)), rng.integers(0, 4, 96)
    return TaskData(x[:64], y[:64], x[64:], y[64:], ["a", "b", "c", "d"], {"type": "custom"})


def _train(directory: Path, optimizer: Any, resume: bool = False) -> RunResult:
    from xpnet.builders import mlp
    from xpnet.losses import get_loss

    def build() -> Any:
        return mlp([8, 16, 4], "relu", optimizer=optimizer(), loss=get_loss("cce", label_smoothing=0.1),
                   backend=get_backend("cpu", "float64", seed=3))

    return run_training(_task(), build, SETTINGS, checkpoint_dir=str(directory), resume=resume,
                        backend=get_backend("cpu", "float64", seed=3), verbose=0, log=lambda message: None)


@pytest.mark.parametrize("optimizer", [
    lambda: AdamW(lr=1e-2, weight_decay=0.05, clip_norm=1.0, max_norm=2.0),
    lambda: RMSprop(lr=1e-2, momentum=0.5, centered=True, weight_decay=1e-3, clip_norm=0.5),
])
def test_a_resumed_run_with_the_new_options_equals_an_uninterrupted_one(tmp_path: Path, optimizer: Any) -> None:
    straight = _train(tmp_path / "straight", optimizer)
    _train(tmp_path / "stopped", optimizer)
    (tmp_path / "stopped" / "checkpoint-e00003-b0000000.npz").unlink()
    resumed = _train(tmp_path / "stopped", optimizer, resume=True)
    assert resumed.history.epoch == [1, 2, 3]
    np.testing.assert_array_equal(resumed.model.get_parameters(), straight.model.get_parameters())
    np.testing.assert_array_equal(resumed.model.moments, straight.model.moments)
    assert resumed.model.optimizer.schedule == Warmup(1, OneCycle(2, 4))


def test_the_new_flags_train_save_and_refuse_a_conflicting_resume(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(48, 8, 8)), y=rng.integers(0, 2, 48))
    args = ["train", "npz", tmp_path / "d.npz", "--device", "cpu", "--model", "cnn", "--filters", "2", "--hidden",
            "8", "--epochs", "2", "--batch-size", "16", "--optimizer", "nesterov", "--lr", "0.01", "--weight-decay",
            "1e-3", "--clip-norm", "1", "--max-norm", "3", "--label-smoothing", "0.1", "--schedule", "exponential",
            "--warmup", "1", "--checkpoint-dir", tmp_path / "ckpt", "--save", tmp_path / "m.npz"]
    status, _, err = run(capsys, *args)
    assert status == 0, err
    model = load_model(tmp_path / "m.npz", device="cpu")
    assert model.optimizer.config() == {
        "name": "nesterov", "lr": 0.01, "weight_decay": 1e-3, "clip_norm": 1.0, "max_norm": 3.0, "momentum": 0.9,
        "schedule": {"name": "warmup", "epochs": 1, "start": 0.0,
                     "then": {"name": "exponential", "gamma": pytest.approx(0.01)}}}
    assert model.loss.label_smoothing == 0.1
    line = one_error(*run(capsys, *args, "--resume", "--epochs", "3", "--clip-norm", "2")[::2])
    assert "--clip-norm 2.0 conflicts with the checkpoint's 1.0" in line, line


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("name", "target"), [("mlp", 0.990), ("cnn", 0.996), ("tiny-cnn", 0.994)])
def test_each_recipe_holds_its_accuracy_target(name: str, target: float, seed: int, shared_data: Path,
                                               capsys) -> None:
    """The issue's targets, for two seeds so that the margin is real (each run under 20 minutes on 2 cores)."""
    status, out, err = run(capsys, "train", "mnist", "--recipe", name, "--seed", str(seed), "--data-dir",
                           shared_data, "--device", "cpu", "--quiet")
    assert status == 0, err
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1)) / 100
    assert accuracy >= target, out


@pytest.mark.slow
def test_the_default_mnist_cnn_reaches_99_45_percent(shared_data: Path, capsys) -> None:
    """`xpnet train mnist --model cnn` (the cnn recipe, seed 0): at least 99.45% on every machine kind."""
    status, out, err = run(capsys, "train", "mnist", "--model", "cnn", "--data-dir", shared_data, "--device", "cpu",
                           "--quiet")
    assert status == 0, err
    assert float(re.search(r"test accuracy ([\d.]+)%", out).group(1)) >= 99.45, out
