"""The command line end to end on real MNIST: train -> save -> evaluate -> predict, checkpoints, bad input."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import assert_clean_error, xpnet
from PIL import Image

from xpnet.data.mnist import load_mnist
from xpnet.serialization import load_model

ACCURACY = re.compile(r"test accuracy (\d+\.\d+)%")


@pytest.fixture(scope="module")
def trained_model(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model, plot = folder / "mnist.npz", folder / "curves.png"
    result = xpnet("train", "mnist", "--data-dir", shared_data, "--epochs", "2", "--hidden", "128",
                   "--save", model, "--plot", plot)
    assert result.returncode == 0, result.stderr
    return model, plot, result


def test_train_reports_saves_and_plots(trained_model):
    model, plot, result = trained_model
    last = result.stdout.strip().splitlines()[-1]
    accuracy = float(ACCURACY.search(last).group(1))
    assert accuracy >= 94.0, last  # 2 epochs of 784-128-10, Adam with cosine decay to 0 step by step: 94.5%
    assert "after 2 epochs" in last and "on cpu" in last
    assert "epoch 2/2: loss=" in result.stderr and "acc=" in result.stderr  # one line per epoch (not a terminal)
    assert "\r" not in result.stderr and "with the kernel compile" in result.stderr
    confusion = plot.with_name("curves-confusion.png")
    assert f"wrote {plot}, {confusion}" in result.stderr  # every chart written is named
    for chart in (plot, confusion):
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_model(model, device="cpu").class_names == [str(d) for d in range(10)]


def test_evaluate_gives_the_same_accuracy(trained_model, shared_data):
    model, _, result = trained_model
    evaluated = xpnet("evaluate", model, "--data-dir", shared_data)
    assert evaluated.returncode == 0, evaluated.stderr
    assert ACCURACY.search(evaluated.stdout).group(1) == ACCURACY.search(result.stdout).group(1)


def test_predict_digits_of_any_size(trained_model, shared_data, tmp_path):
    model, _, _ = trained_model
    data = load_mnist(shared_data)
    paths = []
    for i in range(20):  # dark ink on white paper, 3.5x larger and not square, as a user's scan would be
        image = Image.fromarray(255 - data.x_test[i].reshape(28, 28)).resize((98, 120), Image.BILINEAR)
        paths.append(tmp_path / f"digit{i}.png")
        image.save(paths[-1])
    result = xpnet("predict", model, *paths)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 20
    predicted = [int(re.search(r": (\d) \((\d+\.\d)%\)$", line).group(1)) for line in lines]
    assert np.mean(np.array(predicted) == data.y_test[:20]) >= 0.8


def test_info_lists_devices_and_versions():
    result = xpnet("info")
    assert result.returncode == 0
    assert "xpnet 0." in result.stdout and "Numba" in result.stdout and "kernels: fused" in result.stdout
    assert "gpu:" in result.stdout and "cpu:" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "mnist", "--data-dir", "{empty}", "--no-download"], ["MNIST not found", "--data-dir"]),
        (["train", "mnist", "--data-dir", "{data}", "--hidden", "12,x"], ["--hidden '12,x'"]),
        (["train", "mnist", "--data-dir", "{data}", "--lr", "-1"], ["learning rate"]),
        (["train", "mnist", "--device", "gpu", "--data-dir", "{data}"], ["no GPU is usable"]),
        (["train", "mnist", "--resume", "--data-dir", "{data}"], ["--resume needs --checkpoint-dir"]),
        (["train", "mnist", "--data-dir", "{data}", "--model", "cnn", "--graph", "on"],
         ["graph=on", "draws new random numbers every step"]),
        (["evaluate", "{empty}/none.npz"], ["no such model file"]),
        (["predict", "{model}", "{empty}/missing.png"], ["no such image file"]),
        (["predict", "{model}", "{text}"], ["not a readable image"]),
        (["evaluate", "{text}"], ["not a readable xpnet model file"]),
        (["train", "fruits"], ["needs --data-dir"]),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, fragments, trained_model, shared_data, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    values = {"empty": tmp_path, "data": shared_data, "model": trained_model[0], "text": text}
    result = xpnet(*[arg.format(**values) for arg in args])
    assert_clean_error(result, *fragments)


def test_corrupt_data_file_is_named(shared_data, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for source in (shared_data / "mnist").iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    broken = folder / "t10k-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:-50])
    assert_clean_error(xpnet("train", "mnist", "--data-dir", tmp_path, "--epochs", "1"), str(broken))


def _train_args(shared_data, checkpoints, model):
    return ["train", "mnist", "--data-dir", shared_data, "--epochs", "3", "--hidden", "32", "--dtype", "float64",
            "--batch-size", "256", "--checkpoint-dir", checkpoints, "--save", model, "--quiet"]


def test_ctrl_c_checkpoints_and_resume_ends_exactly_like_an_uninterrupted_run(shared_data, tmp_path):
    straight = xpnet(*_train_args(shared_data, tmp_path / "a", tmp_path / "a.npz"))
    assert straight.returncode == 0, straight.stderr
    args = _train_args(shared_data, tmp_path / "b", tmp_path / "b.npz")
    process = subprocess.Popen([sys.executable, "-m", "xpnet", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**__import__("os").environ,
                                                                         "XPNET_DEVICE": "cpu"})
    deadline = time.monotonic() + 120
    while not list((tmp_path / "b").glob("checkpoint-e00001-*.npz")):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    said = re.search(r"stopped with (\d+) epochs?(?: and (\d+) batch(?:es)?)? done; checkpoint written to \S+"
                     r"checkpoint-e(\d+)-b(\d+)\.npz", stderr)
    assert said, stderr  # the message counts as the checkpoint's name does
    assert [int(n or 0) for n in said.groups()[:2]] == [int(n) for n in said.groups()[2:]], stderr
    resumed = xpnet(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = load_model(tmp_path / "a.npz", device="cpu").get_parameters()
    b = load_model(tmp_path / "b.npz", device="cpu").get_parameters()
    np.testing.assert_array_equal(a, b)
    assert straight.stdout.split(" after")[0] == resumed.stdout.split(" after")[0]


def test_an_unwritable_save_path_is_a_clear_error(shared_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = xpnet("train", "mnist", "--data-dir", shared_data, "--epochs", "0", "--quiet", "--save", blocker / "m.npz")
    assert_clean_error(result, str(blocker), "check the path")


@pytest.fixture(scope="module")
def trained_cnn(shared_data, tmp_path_factory):
    """A small `--model cnn` (4 and 8 filters, 32 hidden units) trained one epoch, then resumed to two."""
    folder = tmp_path_factory.mktemp("cnn")
    args = ["train", "mnist", "--model", "cnn", "--data-dir", shared_data, "--filters", "4,8", "--hidden", "32",
            "--dropout", "0.1", "--checkpoint-dir", folder / "ckpt", "--save", folder / "cnn.npz", "--quiet"]
    first = xpnet(*args, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    second = xpnet(*args, "--epochs", "2", "--resume")
    assert second.returncode == 0, second.stderr
    return folder / "cnn.npz", first, second


def test_cnn_trains_resumes_evaluates_and_predicts(trained_cnn, shared_data, tmp_path):
    model_path, first, second = trained_cnn
    accuracy = [float(ACCURACY.search(run.stdout).group(1)) for run in (first, second)]
    assert accuracy[0] >= 90.0 and accuracy[1] >= accuracy[0] - 0.5, (first.stdout, second.stdout)
    model = load_model(model_path, device="cpu")
    stage = ["conv2d", "batchnorm", "activation", "maxpool2d"]  # --model cnn of mnist: the cnn recipe's network
    assert [layer.type_name for layer in model.layers] == ["reshape", "random_shift", *stage, *stage, "flatten",
                                                           "dropout", "dense", "dropout", "dense"]
    assert model.optimizer.config()["name"] == "adamw" and model.loss.label_smoothing == 0.1
    evaluated = xpnet("evaluate", model_path, "--data-dir", shared_data)
    assert evaluated.returncode == 0, evaluated.stderr
    assert ACCURACY.search(evaluated.stdout).group(1) == ACCURACY.search(second.stdout).group(1)
    digit = tmp_path / "digit.png"
    Image.fromarray(255 - load_mnist(shared_data).x_test[0].reshape(28, 28)).save(digit)
    predicted = xpnet("predict", model_path, digit)
    assert predicted.returncode == 0 and predicted.stdout.startswith(f"{digit}: 7 ("), predicted.stdout


def test_info_prints_a_models_layers(trained_cnn):
    result = xpnet("info", trained_cnn[0])
    assert result.returncode == 0, result.stderr
    assert "(None, 28, 28, 4)" in result.stdout and "conv2d" in result.stdout and "Total params:" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--model", "cnn", "--dropout", "1.5"], ["--dropout 1.5", "[0, 1)"]),
        (["--model", "cnn", "--filters", "8,0"], ["--filters '8,0'", "positive"]),
        (["--filters", "8"], ["--filters applies to --model cnn only"]),
        (["--model", "cnn", "--shift", "-2"], ["--shift -2", "0 or more pixels"]),
        (["--shift", "2"], ["--shift applies to --model cnn only"]),
        (["--model", "cnn", "--activation", "tanh"], ["--activation tanh", "uses ReLU"]),
    ],
)
def test_bad_cnn_options_are_one_clear_line(args, fragments, shared_data):
    assert_clean_error(xpnet("train", "mnist", "--data-dir", shared_data, "--epochs", "1", *args), *fragments)


def test_fruits_has_no_cnn(shared_data):
    assert_clean_error(xpnet("train", "fruits", "--model", "cnn", "--data-dir", shared_data / "fruits-360"),
                       "no --model cnn", "hue histograms")
