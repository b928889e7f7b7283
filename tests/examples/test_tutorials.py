"""The classic from-scratch tutorials' networks, rebuilt with xpnet by the scripts in examples/, reach the
results the tutorials publish, on every device.

The MNIST networks run here on the first 20,000 training rows for one epoch, against stated lower thresholds;
their full-size runs, which check the published accuracies, are marked slow (``pytest -m slow``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from xpnet.data.mnist import make_mnist_csv
from xpnet.data.toy import make_moons

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]
MNIST_CI = ["--rows", "20000", "--epochs", "1"]


def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` with its folder on the path, as when it runs as a script."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def mnist_options(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Options pointing the MNIST examples at the shared IDX files and at CSV files made from them once."""
    csv_dir = tmp_path_factory.mktemp("mnist_csv")
    make_mnist_csv(shared_data, csv_dir)
    return ["--data-dir", str(shared_data), "--csv-dir", str(csv_dir)]


@pytest.mark.parametrize("device", DEVICES)
def test_single_neuron(device: str) -> None:
    assert example("single_neuron").main(["--device", device]) > 0.99


@pytest.mark.parametrize("device", DEVICES)
def test_two_layer_net(device: str) -> None:
    assert example("two_layer_net").main(["--device", device]) < 0.1


@pytest.mark.parametrize("device", DEVICES)
def test_weight_height(device: str) -> None:
    emily, frank = example("weight_height").main(["--device", device])
    assert emily > 0.9
    assert frank < 0.1


@pytest.mark.parametrize("device", DEVICES)
def test_moons_layer_dicts(device: str) -> None:
    assert example("moons_layer_dicts").main(["--device", device]) >= 0.95


@pytest.mark.parametrize("device", DEVICES)
def test_three_layer_xor(device: str) -> None:
    assert example("three_layer_xor").main(["--device", device]) < 0.05


@pytest.mark.parametrize("device", DEVICES)
def test_xor_early_stopping(device: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert example("xor_early_stopping").main(["--device", device]) < 0.1
    epochs = int(capsys.readouterr().out.split("stopped after ")[1].split()[0])
    assert epochs < 20_000  # early stopping ended the training, not the epoch limit


@pytest.mark.parametrize("device", DEVICES)
def test_mnist_sigmoid_reduced(device: str, mnist_options: list[str]) -> None:
    assert example("mnist_sigmoid").main(["--device", device, *mnist_options, *MNIST_CI]) >= 0.90


@pytest.mark.parametrize("device", DEVICES)
def test_mnist_relu_single_layer_reduced(device: str, mnist_options: list[str]) -> None:
    assert example("mnist_relu_single_layer").main(["--device", device, *mnist_options, *MNIST_CI]) >= 0.86


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_mnist_sigmoid_full(device: str, mnist_options: list[str]) -> None:
    assert example("mnist_sigmoid").main(["--device", device, *mnist_options]) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_mnist_relu_single_layer_full(device: str, mnist_options: list[str]) -> None:
    assert example("mnist_relu_single_layer").main(["--device", device, *mnist_options]) >= 0.88


def test_examples_run_as_scripts() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "two_layer_net.py"), "--device", "cpu"],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.startswith("largest prediction error: ")


def test_make_moons_shapes_labels_and_seed() -> None:
    x, y = make_moons(101, noise=0.2, seed=3)
    assert x.shape == (101, 2) and x.dtype == np.float64
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [50, 51]
    again_x, again_y = make_moons(101, noise=0.2, seed=3)
    np.testing.assert_array_equal(x, again_x)
    np.testing.assert_array_equal(y, again_y)
    assert not np.array_equal(x, make_moons(101, noise=0.2, seed=4)[0])
    assert (np.diff(y) < 0).any()  # shuffled


def test_make_moons_without_noise_lies_on_the_two_half_circles() -> None:
    x, y = make_moons(200, seed=0)
    upper, lower = x[y == 0], x[y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0)
    assert (upper[:, 1] >= 0).all()
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0)
    assert (lower[:, 1] <= 0.5).all()
    assert {(-1.0, 0.0), (1.0, 0.0), (0.0, 0.5), (2.0, 0.5)} <= {tuple(np.round(p, 12) + 0.0) for p in x}


@pytest.mark.parametrize(("n", "noise"), [(1, 0.0), (10.5, 0.0), (True, 0.0), (10, -0.1)])
def test_make_moons_rejects_bad_arguments(n: int, noise: float) -> None:
    with pytest.raises(ValueError, match="make_moons needs|noise must"):
        make_moons(n, noise)


@pytest.mark.parametrize("device", DEVICES)
def test_keras_cnn_adam_reduced(device: str, mnist_options: list[str]) -> None:
    assert example("keras_cnn_adam").main(["--device", device, *mnist_options, "--rows", "3000"]) >= 0.85


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_keras_cnn_adam_full(device: str, mnist_options: list[str]) -> None:
    assert example("keras_cnn_adam").main(["--device", device, *mnist_options]) >= 0.97


@pytest.mark.parametrize("device", DEVICES)
def test_keras_cnn_sgd_mse_reduced(device: str, mnist_options: list[str]) -> None:
    """SGD on MSE starts slowly (about 50% after these 94 steps, 84% after a full epoch): learning, not the figure."""
    assert example("keras_cnn_sgd_mse").main(["--device", device, *mnist_options, "--rows", "3000",
                                              "--epochs", "1"]) >= 0.3


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_keras_cnn_sgd_mse_full(device: str, mnist_options: list[str]) -> None:
    assert example("keras_cnn_sgd_mse").main(["--device", device, *mnist_options]) >= 0.98
