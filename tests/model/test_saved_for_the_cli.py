"""Models cross between Python and the command line (issue 24): a Python-trained MNIST model saved with the CLI's
preprocessing is evaluated and used by ``xpnet evaluate`` / ``predict``, and ``xpnet.load_model`` reads what the CLI
writes: a saved model, a checkpoint file, or a checkpoint folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import blobs_csv, run
from PIL import Image

import xpnet
import xpnet.tasks.mnist
from xpnet.tasks import task_of


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DEVICE", "cpu")


def test_a_python_trained_mnist_model_works_with_xpnet_evaluate_and_predict(
        tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = xpnet.load_mnist(shared_data)
    model = xpnet.mlp([784, 32, 10], seed=0, device="cpu", preprocessing=xpnet.tasks.mnist.preprocessing())
    model.compile(optimizer=xpnet.optimizers.Adam(lr=3e-3), metrics=["accuracy", "mae"])
    model.fit(data.x_train[:3000] / 255, data.y_train[:3000], epochs=1, batch_size=100, verbose=0)
    path = model.save(tmp_path / "mnist.npz")

    status, out, err = run(capsys, "evaluate", path, "--data-dir", shared_data)
    assert status == 0, err
    scores = model.evaluate(data.x_test / 255, data.y_test)
    assert out.strip() == (f"test accuracy {100 * scores['accuracy']:.2f}% (loss {scores['loss']:.4f}, mae "
                           f"{scores['mae']:.4g}) on 10000 samples")

    images = []
    for i in range(3):
        images.append(tmp_path / f"digit{i}.png")
        Image.fromarray(data.x_test[i].reshape(28, 28).astype(np.uint8)).save(images[-1])
    status, out, err = run(capsys, "predict", path, *images)
    assert status == 0, err
    answers = [line.split(": ")[1].split(" ")[0] for line in out.strip().splitlines()]
    assert answers == [str(model.predict(data.x_test[i] / 255)) for i in range(3)]


def test_load_model_reads_a_cli_model_its_checkpoints_and_their_folder(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = blobs_csv(tmp_path / "t.csv", 60)
    status, _, err = run(capsys, "train", "csv", data, "--label", "kind", "--epochs", "2", "--quiet",
                         "--save", tmp_path / "m.npz", "--checkpoint-dir", tmp_path / "ckpt")
    assert status == 0, err
    saved = xpnet.load_model(tmp_path / "m.npz")
    newest = xpnet.load_model(tmp_path / "ckpt")
    checkpoint = xpnet.load_model(tmp_path / "ckpt" / "checkpoint-e00002-b0000000.npz")
    for other in (newest, checkpoint):
        np.testing.assert_array_equal(other.get_parameters(), saved.get_parameters())
    status, out, err = run(capsys, "predict", tmp_path / "m.npz", data)
    assert status == 0, err
    _, features = task_of(saved.preprocessing, "m.npz").predict_features(saved, data)  # what the CLI feeds it
    predicted = saved.predict(features)  # the CLI's class names come back
    assert saved.class_names == ["x", "y"] and set(predicted) <= {"x", "y"}
    assert [line.split(": ")[1].split(" ")[0] for line in out.strip().splitlines()] == list(predicted)
