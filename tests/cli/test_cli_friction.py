"""What a newcomer trips over on the command line (issue 15), run in-process with ``xpnet.cli.main``: the
validation split, resume against conflicting flags, paths checked before training, bad images named one by one."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error, run
from conftest import GPU_PROBLEM
from PIL import Image

from xpnet.builders import mlp
from xpnet.checkpoint import latest_checkpoint
from xpnet.cli import build_parser, main
from xpnet.serialization import load_model
from xpnet.tasks import TASK_DEFAULTS, TaskData, holdout_mask, validation_split

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "16", "--epochs", "1", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CPU, and a fresh feature cache for this module's fruit runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XPNET_DATA", str(tmp_path_factory.mktemp("xpnet-data")))
        patch.setenv("XPNET_DEVICE", "cpu")
        yield




@pytest.fixture(scope="module")
def fruit_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One epoch of a small fruit network with checkpoints, and its output."""
    out = tmp_path_factory.mktemp("fruit-run")
    args = ["train", "fruits", "--data-dir", shared_data, *TINY, "--checkpoint-dir", out / "ckpt",
            "--save", out / "model.npz"]
    err = io.StringIO()  # a module fixture cannot take capsys: capture by hand
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as stdout:
        status = main([str(arg) for arg in args])
    assert status == 0, err.getvalue()
    return {"args": args, "out": out, "stdout": stdout.getvalue(), "stderr": err.getvalue()}


def test_the_validation_split_is_held_out_of_training_and_the_test_set_reported_once(fruit_run: dict) -> None:
    found = latest_checkpoint(fruit_run["out"] / "ckpt", device="cpu")
    assert found.settings["validation_split"] == TASK_DEFAULTS["fruits"]["mlp"]["validation_split"]
    last = fruit_run["stdout"].strip().splitlines()[-1]
    test_loss = float(re.search(r"\(loss (\d+\.\d+)\)", last)[1])
    assert abs(found.history.history["val_loss"][-1] - test_loss) > 1e-4  # validation is not the test set
    assert " after 1 epoch in " in last  # not "1 epochs"


def test_validation_split_is_stratified_seeded_and_optional() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    task = TaskData(np.arange(100.0)[:, None], labels, np.zeros((1, 1)), np.zeros(1), ["a", "b", "c"], {})
    x, y, (x_val, y_val) = validation_split(task, 0.1, seed=3)
    assert np.bincount(y_val).tolist() == [5, 3, 2] and len(y) == 90
    assert sorted(np.r_[x[:, 0], x_val[:, 0]].tolist()) == list(range(100))  # a partition of the training set
    again = validation_split(task, 0.1, seed=3)[2][0]
    assert np.array_equal(x_val, again) and not np.array_equal(x_val, validation_split(task, 0.1, seed=4)[2][0])
    assert validation_split(task, 0.0, seed=3)[2] is None


@pytest.mark.parametrize(("counts", "fraction", "held"), [([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
                                                          0.1, 6000), ([3, 3, 4], 0.5, 5), ([5, 7], 0.01, 2)])
def test_the_held_out_count_is_the_fraction_of_all_samples(counts, fraction, held) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)  # MNIST's class sizes: 6,000 held out leaves 54,000
    mask = holdout_mask(labels, fraction, seed=0)
    assert mask.sum() == held and np.bincount(labels[mask], minlength=len(counts)).min() >= 1


def test_resume_refuses_flags_that_conflict_with_the_checkpoint(
    fruit_run: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag, value, saved in (("--hidden", "64", "16"), ("--optimizer", "sgd", "adam"), ("--seed", "3", "0")):
        line = one_error(*run(capsys, *fruit_run["args"], "--resume", flag, value)[::2])
        assert f"{flag} {value} conflicts with the checkpoint's {saved}" in line, line


def test_resuming_a_finished_run_says_it_is_complete(fruit_run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, *fruit_run["args"], "--resume", "--hidden", "16")  # an agreeing flag is fine
    assert status == 0, err
    assert "is already complete" in err and "larger --epochs" in err and "epoch 1/1" not in err
    assert "(replaced the existing file)" in err  # --save over the first run's model
    first = fruit_run["stdout"].strip().splitlines()[-1]
    assert out.strip().splitlines()[-1].split(" in ")[0] == first.split(" in ")[0]  # the same model, reported


def test_an_unreadable_checkpoint_is_one_line_and_the_older_one_is_used(
    fruit_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    good = next((fruit_run["out"] / "ckpt").glob("checkpoint-*.npz"))
    (folder / good.name).write_bytes(good.read_bytes())
    broken = folder / "checkpoint-e00002-b0000003.npz"
    broken.write_bytes(b"not a zip file")
    args = [arg if arg != fruit_run["out"] / "ckpt" else folder for arg in fruit_run["args"]]
    status, _, err = run(capsys, *args[:-2], "--resume", "--epochs", "2")
    assert status == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: skipping")]
    assert len(notes) == 1 and str(broken) in notes[0] and "next older one" in notes[0], err
    assert "Warning" not in err and "warnings.warn" not in err
    assert f"resuming from {folder / good.name}" in err


def test_duplicate_and_single_classes_are_refused(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "fruits", "--data-dir", shared_data, *TINY]
    line = one_error(*run(capsys, *base, "--classes", "Mango,Mango")[::2])
    assert "'Mango' is asked for more than once" in line
    line = one_error(*run(capsys, *base, "--classes", "Mango")[::2])
    assert "needs at least two classes" in line and "'Mango'" in line


@pytest.mark.parametrize("flag", ["--checkpoint-dir", "--save", "--plot"])
def test_output_paths_are_checked_before_training(
    flag: str, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = {"--checkpoint-dir": ROOT / "README.md", "--save": tmp_path, "--plot": ROOT / "README.md" / "c.png"}
    status, _, err = run(capsys, "train", "fruits", "--data-dir", shared_data, *TINY, flag, target[flag])
    line = one_error(status, err)  # nothing else: no summary, no epoch was trained
    assert f"{flag} {target[flag]}" in line
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def models(fruit_run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fruit model (trained above) and an untrained MNIST-preprocessing model, with a good image for each."""
    folder = tmp_path_factory.mktemp("models")
    digit = mlp([784, 10], seed=0, device="cpu", class_names=[str(d) for d in range(10)],
                preprocessing={"type": "mnist", "scale": 255.0})
    digit.save(folder / "mnist.npz")
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    Image.fromarray(image).save(folder / "one.png")
    return {"mnist": folder / "mnist.npz", "fruits": fruit_run["out"] / "model.npz", "mnist-image": folder / "one.png"}


@pytest.mark.parametrize("kind", ["mnist", "fruits"])
def test_predict_answers_for_each_good_image_and_names_each_bad_one(
    kind: str, models: dict[str, Path], shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mango = shared_data / "fruits-360" / "Training" / "Mango"
    good = models["mnist-image"] if kind == "mnist" else sorted(mango.iterdir())[0]
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    status, out, err = run(capsys, "predict", models[kind], good, notes, good)
    assert [line.split(": ")[0] for line in out.splitlines()] == [str(good), str(good)]
    line = one_error(status, err)
    assert line == f"xpnet: error: {notes}: not a readable image " + line.split(f"{notes}: not a readable image ")[1]
    status, out, err = run(capsys, "predict", models[kind], notes, tmp_path / "missing.png")
    line = one_error(status, err)
    assert "2 of the 2 image files could not be read" in line and f"{tmp_path / 'missing.png'}: no such image" in line
    assert out == ""


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_missing_gpu_is_named_as_the_problem_not_the_model_file(
    command: str, models: dict[str, Path], shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if GPU_PROBLEM is None:
        pytest.skip("a GPU is usable here")
    extra = [models["mnist-image"]] if command == "predict" else ["--data-dir", shared_data]
    line = one_error(*run(capsys, command, models["mnist"], *extra, "--device", "gpu")[::2])
    assert "no GPU is usable" in line and "invalid" not in line


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--dtype {float32,float64} floating-point precision" in text and "--validation-split FRACTION" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("usage: xpnet bench")


def test_every_readme_command_works_offline() -> None:
    readme = (ROOT / "README.md").read_text()
    lines = "\n".join(re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)).replace("\\\n", " ").splitlines()
    commands = [line.split("#")[0].strip() for line in lines if line.startswith("xpnet ")]
    assert len(commands) >= 8
    for command in commands:
        words = command.split()
        args = build_parser().parse_args(words[1:])
        if words[1] in ("train", "evaluate"):  # the data named: a folder, or the user's own file or folder
            own = args.source if words[1] == "train" else args.data
            assert "--data-dir" in words or own is not None, command
    assert "'.[bench]'" in readme.split("## Benchmarks")[1]
    assert all(name in readme for name in ("-confusion.png", "-hues.png"))


PATIENT = ["--hidden", "16", "--patience", "2", "--lr", "0.05", "--schedule", "constant", "--device", "cpu"]
"""A fruit network trained with a learning rate high enough for its validation loss to stall within a few epochs."""


def _stopped_where_patience_says(val_loss: list[float], patience: int) -> None:
    best, wait = float("inf"), 0
    for epoch, value in enumerate(val_loss, 1):
        best, wait = (value, 0) if value < best else (best, wait + 1)
        if wait >= patience:
            assert epoch == len(val_loss), (val_loss, epoch)
            return
    raise AssertionError(f"no early stop in {val_loss}")


def test_patience_stops_early_and_a_resumed_run_stops_at_the_same_epoch(capsys, shared_data, tmp_path) -> None:
    data = ["train", "fruits", "--data-dir", shared_data, *PATIENT]
    status, _, err = run(capsys, *data, "--epochs", "40", "--checkpoint-dir", tmp_path / "a",
                         "--save", tmp_path / "a.npz")
    assert status == 0, err
    straight = latest_checkpoint(tmp_path / "a")
    _stopped_where_patience_says(straight.history.history["val_loss"], 2)
    epochs = len(straight.history.epoch)
    assert epochs < 40 and f"stopped early after epoch {epochs}: the validation loss has not improved for 2" in err

    status, _, err = run(capsys, *data, "--epochs", "1", "--checkpoint-dir", tmp_path / "b")
    assert status == 0, err
    status, _, err = run(capsys, *data, "--epochs", "40", "--checkpoint-dir", tmp_path / "b", "--resume",
                         "--save", tmp_path / "b.npz")
    assert status == 0 and f"stopped early after epoch {epochs}" in err, err
    np.testing.assert_array_equal(load_model(tmp_path / "b.npz").get_parameters(),
                                  load_model(tmp_path / "a.npz").get_parameters())

    status, out, err = run(capsys, *data, "--epochs", "40", "--checkpoint-dir", tmp_path / "a", "--resume")
    assert status == 0 and f"already complete: it stopped early after epoch {epochs}" in err, err
    assert f"after {epochs} epochs" in out


@pytest.mark.parametrize(("flags", "message"), [(["--patience", "-1"], "--patience -1: must be 0 or more epochs"),
                                                (["--patience", "3", "--validation-split", "0"],
                                                 "--patience watches the validation loss")])
def test_bad_patience_is_one_line(capsys, shared_data, flags, message) -> None:
    assert message in one_error(*run(capsys, "train", "fruits", "--data-dir", shared_data, *TINY, *flags)[::2])
