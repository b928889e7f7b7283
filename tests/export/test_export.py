"""ONNX export: the exported file, run by onnxruntime, gives what ``predict_proba`` gives (float32, within 1e-5) on
real MNIST and fruit inputs, for every layer, activation, padding and stride; the ``xpnet export`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_helpers import assert_clean_error, xpnet
from xpnet.kernels import ACTIVATIONS

from xpnet import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Reshape,
    Sequential,
)
from xpnet.builders import cnn, mlp
from xpnet.cli import main
from xpnet.data.fruits import decode_images, load_fruits
from xpnet.data.mnist import load_mnist
from xpnet.errors import ExportError
from xpnet.export import ACTIVATION_OPS, OPSET, to_onnx
from xpnet.layers import LAYER_TYPES
from xpnet.layers.conv import NEVER_DECREASING
from xpnet.serialization import load_model, save_model
from xpnet.tasks import mnist as mnist_task

TOLERANCE = 1e-5


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.asarray(x, dtype=np.float32)})[0]


def assert_exports_exactly(model: Sequential, x: np.ndarray, path: Path) -> np.ndarray:
    """Export ``model`` to ``path``; onnxruntime's outputs on ``x`` must be ``predict_proba``'s within 1e-5."""
    to_onnx(model, path)
    expected = model.predict_proba(x)
    got = run_onnx(path, x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    return got


def random_rows(model: Sequential, n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *model.input_shape)).astype(np.float32)


@pytest.fixture(scope="module")
def mnist(shared_data: Path) -> dict[str, np.ndarray]:
    data = load_mnist(shared_data, download=False)
    return {"x_train": data.x_train[:1024] / np.float32(255), "y_train": data.y_train[:1024],
            "x_test": data.x_test[:200] / np.float32(255)}


@pytest.fixture(scope="module")
def mnist_mlp(mnist: dict[str, np.ndarray]) -> Sequential:
    """A 784-32-10 network after 8 Adam steps, with the MNIST task's class names and preprocessing."""
    model = mlp([784, 32, 10], dropout=0.2, seed=0, device="cpu", class_names=mnist_task.CLASS_NAMES,
                preprocessing=mnist_task.PREPROCESSING)
    model.fit(mnist["x_train"], mnist["y_train"], epochs=1, batch_size=128, verbose=0)
    assert model.step == 8
    return model


@pytest.fixture(scope="module")
def fruits(shared_data: Path) -> dict[str, np.ndarray]:
    """Every fourth image of the shared Fruits-360 subset, as 32x32 RGB pixels in [0, 1], and its labels."""
    images = load_fruits(shared_data / "fruits-360")["train"]
    pixels, kept = decode_images(images.paths[::4], size=(32, 32))
    assert len(kept) == len(images.paths[::4])
    return {"x": pixels / np.float32(255), "y": images.labels[::4]}


def test_mnist_mlp(mnist_mlp: Sequential, mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    got = assert_exports_exactly(mnist_mlp, mnist["x_test"], tmp_path / "mlp.onnx")
    np.testing.assert_array_equal(got.argmax(axis=1), mnist_mlp.predict(mnist["x_test"]))


def test_mnist_cnn(mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    """Flat rows in, Reshape to (28, 28, 1), random shifts (trained with, gone at inference), two same-padded
    convolutions and pools, dropout, Flatten, Dense."""
    model = cnn((28, 28, 1), 10, filters=(4, 8), dense=16, dropout=0.25, shift=2, seed=0, device="cpu")
    assert model.layers[1].type_name == "random_shift"
    model.fit(mnist["x_train"][:512], mnist["y_train"][:512], epochs=1, batch_size=64, verbose=0)
    got = assert_exports_exactly(model, mnist["x_test"], tmp_path / "cnn.onnx")
    np.testing.assert_array_equal(got.argmax(axis=1), model.predict(mnist["x_test"]))


def test_fruits_hue_mlp(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fruit job's model: standardised hue-histogram features of the real photos."""
    from xpnet.backend import get_backend
    from xpnet.tasks import fruits as fruits_task

    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
    task = fruits_task.load_task(shared_data / "fruits-360", None, get_backend("cpu"))
    model = mlp([task.x_train.shape[1], 16, len(task.class_names)], seed=0, device="cpu")
    model.fit(task.x_train, task.y_train, epochs=1, batch_size=32, verbose=0)
    assert_exports_exactly(model, task.x_test, tmp_path / "fruits.onnx")


def test_fruits_rgb_cnn(fruits: dict[str, np.ndarray], tmp_path: Path) -> None:
    """(32, 32, 3) images in (no Reshape): a strided convolution, BatchNorm with trained running statistics, a
    pool, a valid convolution, Flatten of three channels, dropout."""
    model = Sequential([Conv2D(6, 3, strides=2, padding="same", activation="relu"), BatchNorm(momentum=0.5),
                        MaxPool2D(2), Conv2D(8, 3, activation="tanh"), Flatten(), Dropout(0.2),
                        Dense(4, "softmax")], input_shape=(32, 32, 3), seed=0, device="cpu")
    model.fit(fruits["x"], fruits["y"], epochs=2, batch_size=16, verbose=0)
    running_var = model.layers[1].state["running_var"]
    assert not np.allclose(running_var, 1)  # trained statistics, not the initial ones
    assert_exports_exactly(model, fruits["x"], tmp_path / "fruits-cnn.onnx")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation(activation: str, tmp_path: Path) -> None:
    """Dense (on features) and Conv2D (softmax over the channels) outputs with every activation, compared
    directly; leaky ReLU with a slope other than the default."""
    dense = Sequential([Dense(6, activation, alpha=0.2)], input_shape=7, loss="mse", seed=1, device="cpu")
    assert_exports_exactly(dense, random_rows(dense), tmp_path / "dense.onnx")
    conv = Sequential([Reshape((5, 4, 3)), Conv2D(4, 3, padding="same", activation=activation, alpha=0.3),
                       Flatten()], input_shape=60, loss="mse", seed=1, device="cpu")
    assert_exports_exactly(conv, random_rows(conv), tmp_path / "conv.onnx")


@pytest.mark.parametrize("activation", NEVER_DECREASING)
def test_a_convolution_that_max_pools_becomes_conv_activation_maxpool(activation: str, tmp_path: Path) -> None:
    """Conv2D(max_pool=...) pools before its activation; the export pools after it, as ONNX models are written."""
    model = Sequential([Reshape((7, 5, 3)), Conv2D(4, 3, padding="same", activation=activation, alpha=0.3,
                                                   max_pool=(2, 3)), Flatten()], input_shape=105, loss="mse", seed=1,
                       device="cpu")
    model.set_parameters(np.random.default_rng(3).normal(size=model.parameter_count))
    assert_exports_exactly(model, random_rows(model), tmp_path / "conv-pool.onnx")


@pytest.mark.parametrize(("kernel", "strides", "padding", "bias"), [
    (3, 1, "same", True), (3, 2, "same", True), (4, 2, "same", True), (2, 3, "same", False),
    ((3, 2), (2, 1), "same", True), (3, 2, "valid", True), ((2, 4), (3, 2), "valid", False),
])
@pytest.mark.parametrize(("pool", "pool_strides"), [(2, None), ((2, 3), (1, 2))])
def test_convolution_padding_and_strides(kernel, strides, padding, bias, pool, pool_strides, tmp_path: Path) -> None:
    """Odd, non-square inputs: asymmetric same padding, windows that leave rows over, kernels smaller than strides."""
    model = Sequential([Reshape((9, 10, 2)), Conv2D(3, kernel, strides, padding, "identity", bias=bias),
                        MaxPool2D(pool, pool_strides), Flatten()], input_shape=180, loss="mse", seed=2, device="cpu")
    if bias:
        model.set_parameters(np.random.default_rng(3).normal(size=model.parameter_count))
    assert_exports_exactly(model, random_rows(model, seed=4), tmp_path / "conv.onnx")


@pytest.mark.parametrize(("pool", "pool_strides"), [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_average_pools(pool, pool_strides, tmp_path: Path) -> None:
    """AvgPool2D (tiling, overlapping, uneven windows) becomes AveragePool, GlobalAvgPool2D GlobalAveragePool
    then Flatten, both channels-first between transposes."""
    model = Sequential([Reshape((9, 10, 2)), Conv2D(3, 2, activation="tanh"), AvgPool2D(pool, pool_strides),
                        GlobalAvgPool2D(), Dense(4, "softmax")], input_shape=180, seed=2, device="cpu")
    model.set_parameters(np.random.default_rng(3).normal(size=model.parameter_count))
    assert_exports_exactly(model, random_rows(model, seed=4), tmp_path / "avg.onnx")
    flat = Sequential([Reshape((5, 4, 3)), AvgPool2D(2, 1), Flatten()], input_shape=60, loss="mse", device="cpu")
    assert_exports_exactly(flat, random_rows(flat), tmp_path / "avg-flat.onnx")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_activation_layer(activation: str, tmp_path: Path) -> None:
    """Conv2D -> BatchNorm -> Activation (softmax over the channels), and an Activation on features."""
    model = Sequential([Reshape((5, 4, 3)), Conv2D(4, 3, padding="same"), BatchNorm(), Activation(activation, 0.3),
                        Flatten()], input_shape=60, loss="mse", seed=1, device="cpu")
    assert_exports_exactly(model, random_rows(model), tmp_path / "conv-bn-act.onnx")
    dense = Sequential([Dense(6), Activation(activation, 0.2)], input_shape=7, loss="mse", seed=1, device="cpu")
    assert_exports_exactly(dense, random_rows(dense), tmp_path / "act.onnx")


def test_batch_norm_uses_running_statistics(tmp_path: Path) -> None:
    """BatchNorm over the last axis of (rows, features), of (6, 10) and (3, 4, 5) samples, and of a convolution's
    channels, with random statistics, scales and shifts."""
    model = Sequential([Reshape((6, 10)), BatchNorm(), Reshape((3, 4, 5)), BatchNorm(), Conv2D(4, 3, padding="same"),
                        BatchNorm(epsilon=0.01), Flatten(), Dense(6), BatchNorm()],
                       input_shape=60, loss="mse", seed=5, device="cpu")
    rng = np.random.default_rng(6)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, layer.channels)
            layer.params["beta"][...] = rng.normal(0, 0.1, layer.channels)
    model.set_state(np.concatenate([np.r_[rng.normal(0, 0.2, layer.channels), rng.uniform(0.5, 2, layer.channels)]
                                    for layer in model.layers if isinstance(layer, BatchNorm)]))
    assert_exports_exactly(model, random_rows(model, 9), tmp_path / "bn.onnx")


def test_float64_model_exports_as_float32(mnist_mlp: Sequential, mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    saved = save_model(mnist_mlp, tmp_path / "m.npz")
    model = load_model(saved, device="cpu", dtype="float64")
    assert model.dtype == np.float64
    assert_exports_exactly(model, mnist["x_test"], tmp_path / "m.onnx")


@pytest.mark.gpu
def test_gpu_model(mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    """Parameters and running statistics come to the host from the GPU."""
    model = Sequential([Dense(16, "relu"), BatchNorm(), Dense(10, "softmax")], input_shape=784, seed=0, device="gpu")
    model.fit(mnist["x_train"], mnist["y_train"], epochs=1, batch_size=128, verbose=0)
    assert_exports_exactly(model, mnist["x_test"], tmp_path / "gpu.onnx")


def test_file_is_checked_with_metadata(mnist_mlp: Sequential, tmp_path: Path) -> None:
    path = to_onnx(mnist_mlp, tmp_path / "mlp.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["class_names"]) == mnist_task.CLASS_NAMES
    assert json.loads(props["preprocessing"]) == mnist_task.PREPROCESSING
    assert "Dropout" not in {node.op_type for node in proto.graph.node}
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"  # any batch size
    assert run_onnx(path, np.zeros((1, 784))).shape == (1, 10)


class Unexportable(Layer):
    """A layer type the exporter does not know (registered by the tests that need it)."""

    type_name = "test_unexportable"


def test_unknown_layer_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LAYER_TYPES, Unexportable.type_name, Unexportable)
    model = Sequential([Dense(3), Unexportable(), Dense(2, "softmax")], input_shape=4, device="cpu")
    with pytest.raises(ExportError, match=r"layer 1 \(test_unexportable\) has no ONNX form"):
        to_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_activation_without_onnx_form_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(ACTIVATION_OPS, "tanh")
    model = Sequential([Dense(3, "relu"), Dense(3, "tanh"), Dense(2, "softmax")], input_shape=4, device="cpu")
    with pytest.raises(ExportError, match=r"layer 1 \(dense\) cannot be exported: its activation 'tanh'"):
        to_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_export(mnist_mlp: Sequential, mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    saved = save_model(mnist_mlp, tmp_path / "mnist.npz")
    result = xpnet("export", saved, tmp_path / "out" / "mnist.onnx", timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'out' / 'mnist.onnx'} (ONNX opset {OPSET})" in result.stdout
    expected = load_model(saved, device="cpu").predict_proba(mnist["x_test"])
    np.testing.assert_allclose(run_onnx(tmp_path / "out" / "mnist.onnx", mnist["x_test"]), expected, rtol=0,
                               atol=TOLERANCE)


def test_cli_export_of_a_bad_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert_clean_error(xpnet("export", bad, tmp_path / "m.onnx", timeout=120), str(bad), "not a readable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_cli_export_of_an_unexportable_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(LAYER_TYPES, Unexportable.type_name, Unexportable)
    model = Sequential([Unexportable(), Dense(2, "softmax")], input_shape=4, device="cpu")
    saved = save_model(model, tmp_path / "m.npz")
    assert main(["export", str(saved), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xpnet: error: layer 0 (test_unexportable) has no ONNX form")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_cli_export_without_onnx(mnist_mlp: Sequential, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys) -> None:
    saved = save_model(mnist_mlp, tmp_path / "m.npz")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    assert main(["export", str(saved), str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err == ("xpnet: error: ONNX export needs the onnx package, which is not installed "
                                       "(pip install 'xpnet[onnx]')\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
