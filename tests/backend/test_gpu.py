"""The CuPy backend end to end on a real CUDA GPU (skipped with the reason when there is none)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cli_helpers import xpnet

from xpnet.builders import mlp
from xpnet.serialization import load_model, save_model

pytestmark = pytest.mark.gpu


def _data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 20)), rng.integers(0, 4, n)


def test_same_seed_gives_the_same_loss_curve_on_cpu_and_gpu_in_float64():
    x, y = _data()
    curves, params = [], []
    for device in ("cpu", "gpu"):
        model = mlp([20, 32, 16, 4], "tanh", device=device, dtype="float64", seed=3)
        history = model.fit(x, y, epochs=5, batch_size=32, seed=4, verbose=0)
        curves.append(history.history["loss"])
        params.append(model.get_parameters())
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-9)
    np.testing.assert_allclose(params[1], params[0], rtol=1e-7, atol=1e-10)


def test_models_move_between_devices(tmp_path):
    x, y = _data()
    for trained_on, loaded_on in (("gpu", "cpu"), ("cpu", "gpu")):
        model = mlp([20, 8, 4], device=trained_on, seed=0)
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        path = save_model(model, tmp_path / f"{trained_on}.npz")
        moved = load_model(path, device=loaded_on)
        assert moved.backend.name == loaded_on
        np.testing.assert_allclose(moved.predict_proba(x), model.predict_proba(x), rtol=1e-4, atol=1e-6)


def test_mnist_trains_to_98_percent_on_the_gpu(shared_data):
    result = xpnet("train", "mnist", "--data-dir", shared_data, "--device", "gpu", "--quiet",
                   env={"XPNET_DEVICE": "gpu"})
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy (\d+\.\d+)%", result.stdout).group(1))
    assert accuracy >= 98.0 and "on gpu" in result.stdout


def test_fruits_train_on_the_gpu(shared_data, tmp_path):
    result = xpnet("train", "fruits", "--data-dir", shared_data, "--device", "gpu", "--quiet",
                   env={"XPNET_DEVICE": "gpu", "XPNET_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert float(re.search(r"accuracy (\d+\.\d+)%", result.stdout).group(1)) >= 99.0
