"""Layers own their shapes, parameters and state: shape inference, the registry, configs, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_clean_error, xpnet
from PIL import Image

from xpnet import (
    Activation,
    AvgPool2D,
    BatchNorm,
    ConfigError,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ModelFileError,
    RandomShift,
    Reshape,
    Sequential,
    load_model,
)
from xpnet.backend import get_backend
from xpnet.layers import LAYER_TYPES, layer_from_config
from xpnet.serialization import read_archive, write_archive


def keras_example() -> Sequential:
    return Sequential([Reshape((28, 28, 1)), Conv2D(32, 3, activation="relu"), MaxPool2D(2), Flatten(),
                       Dense(10, activation="softmax")], input_shape=784, device="cpu", seed=0)


def test_shapes_are_inferred_from_the_input_size():
    model = keras_example()
    assert [layer.output_shape for layer in model.layers] == [(28, 28, 1), (26, 26, 32), (13, 13, 32), (5408,),
                                                               (10,)]
    assert model.parameter_count == (9 * 32 + 32) + (5408 * 10 + 10)
    text = model.summary(print_fn=None)
    assert "(None, 26, 26, 32)" in text and "54,090" in text and "Total params: 54,410" in text


@pytest.mark.parametrize(("padding", "strides", "expected"), [
    ("valid", 1, (5, 3, 4)), ("valid", 2, (3, 2, 4)), ("same", 1, (7, 5, 4)), ("same", 2, (4, 3, 4)),
    ("same", (3, 1), (3, 5, 4)),
])
def test_convolution_output_shapes_follow_keras(padding, strides, expected):
    model = Sequential([Conv2D(4, 3, strides, padding), Flatten(), Dense(2, "softmax")], input_shape=(7, 5, 2),
                       device="cpu")
    assert model.layers[0].output_shape == expected


@pytest.mark.parametrize("init", ["glorot_uniform", "glorot_normal"])
def test_glorot_counts_a_convolutions_window_in_its_fan_out(init):
    """As Keras and PyTorch: fan_in = 3*3*8 inputs, fan_out = 3*3*16 (every filter at every window position)."""
    model = Sequential([Conv2D(16, 3, activation="tanh", init=init, input_shape=(9, 9, 8)), Flatten(),
                        Dense(4, "softmax", init=init)], device="cpu", seed=0, dtype="float64")
    conv, dense = model.layers[0].params["W"], model.layers[2].params["W"]
    conv_limit, dense_limit = np.sqrt(6 / (72 + 144)), np.sqrt(6 / (7 * 7 * 16 + 4))
    if init == "glorot_uniform":
        assert conv_limit * 0.98 < np.abs(conv).max() <= conv_limit
        assert dense_limit * 0.98 < np.abs(dense).max() <= dense_limit
    else:
        np.testing.assert_allclose(conv.std(), conv_limit / np.sqrt(3), rtol=0.1)
        np.testing.assert_allclose(dense.std(), dense_limit / np.sqrt(3), rtol=0.05)


def test_every_layer_round_trips_through_its_config():
    layers = [Reshape((6, 6, 2)), RandomShift((1, 2), seed=4), Conv2D(3, (3, 2), (1, 2), "same", "tanh", bias=False),
              BatchNorm(0.9, 1e-4), MaxPool2D(2, 1), Dropout(0.3, seed=5), Conv2D(2, 1, activation="relu", max_pool=2),
              Flatten(), Dense(4, "leaky_relu", alpha=0.2)]
    model = Sequential(layers, "mse", input_shape=72, device="cpu", seed=1)
    for layer in model.layers:
        again = layer_from_config(layer.config())
        assert type(again) is type(layer) and again.config() == layer.config()
    assert set(LAYER_TYPES) >= {"dense", "conv2d", "maxpool2d", "flatten", "reshape", "dropout", "batchnorm",
                                "random_shift"}


def test_the_new_layers_save_load_and_predict_the_same(tmp_path):
    """Conv2D -> BatchNorm -> Activation, AvgPool2D and GlobalAvgPool2D: configs round-trip, shapes are inferred,
    and a saved model loads through the registry and predicts what it did."""
    layers = [Conv2D(4, 3, padding="same"), BatchNorm(), Activation("leaky_relu", alpha=0.2), AvgPool2D((2, 3), 1),
              GlobalAvgPool2D(), Dense(3, "softmax")]
    model = Sequential(layers, input_shape=(6, 7, 2), device="cpu", seed=3)
    assert [layer.output_shape for layer in model.layers[2:5]] == [(6, 7, 4), (5, 5, 4), (4,)]
    for layer in model.layers:
        again = layer_from_config(layer.config())
        assert type(again) is type(layer) and again.config() == layer.config()
    x = np.random.default_rng(4).random((5, 6, 7, 2))
    model.fit(x, np.eye(3)[[0, 1, 2, 0, 1]], epochs=1, batch_size=5, verbose=0)
    loaded = load_model(model.save(tmp_path / "new-layers.npz"), device="cpu")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize(("activation", "pool"), [("relu", 2), ("leaky_relu", (3, 2)), ("tanh", (2, 1))])
def test_a_convolution_that_max_pools_equals_conv2d_then_maxpool2d(kernel_mode, activation, pool):
    """Pooling before the activation gives Conv2D + MaxPool2D's outputs and, a summation order aside, gradients;
    the pool drops the odd last row and column as MaxPool2D does, and the summary names the pool."""
    def build(fused: bool) -> Sequential:
        conv = Conv2D(4, 3, padding="same", activation=activation, alpha=0.3, max_pool=pool if fused else None)
        return Sequential([Reshape((7, 9, 2)), conv, *([] if fused else [MaxPool2D(pool)]), Flatten(),
                           Dense(3, "softmax")], input_shape=126, device="cpu", seed=2, dtype="float64",
                          kernel_mode=kernel_mode)

    fused, separate = build(True), build(False)
    assert fused.layers[1].output_shape == separate.layers[2].output_shape
    assert f"max-pool {fused.layers[1].max_pool[0]}x{fused.layers[1].max_pool[1]}" in fused.summary(print_fn=None)
    rng = np.random.default_rng(3)
    fused.buffer[0][:] = separate.buffer[0][:] = rng.standard_normal(fused.buffer[0].size)
    x, y = rng.standard_normal((5, 126)), np.eye(3)[rng.integers(0, 3, 5)]
    np.testing.assert_array_equal(fused.predict_proba(x), separate.predict_proba(x))
    gradients = []
    for model in (fused, separate):
        model.compute_gradients(x, y, model.workspace(5, backward=True), np.zeros(2), True)
        gradients.append(model.buffer[1].copy())
    np.testing.assert_allclose(*gradients, rtol=1e-12, atol=1e-15)


def test_state_is_its_own_buffer_saved_with_the_model(tmp_path):
    model = Sequential([Dense(3, input_dim=2), BatchNorm(), Dense(2, "softmax")], device="cpu", seed=0)
    assert model.parameter_count == 2 * 3 + 3 + 3 + 3 + 3 * 2 + 2 and model.state_count == 6
    np.testing.assert_array_equal(model.get_state(), [0, 0, 0, 1, 1, 1])
    model.set_state(np.arange(6.0))
    loaded = load_model(model.save(tmp_path / "bn.npz"), device="cpu")
    np.testing.assert_array_equal(loaded.get_state(), np.arange(6.0))


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Conv2D(8, 0), "kernel_size must be a positive integer"),
    (lambda: Conv2D(8, 3, strides=0), "strides must be a positive integer"),
    (lambda: Conv2D(8, 3, padding="full"), "padding must be one of valid, same"),
    (lambda: Conv2D(8, (3, 3, 3)), "one integer or (height, width)"),
    (lambda: MaxPool2D(0), "pool_size must be a positive integer"),
    (lambda: Conv2D(8, 3, max_pool=0), "Conv2D max_pool must be a positive integer"),
    (lambda: Conv2D(8, 3, activation="softmax", max_pool=2),
     "equals pooling after it only for an activation that never decreases"),
    (lambda: Conv2D(8, 3, activation="leaky_relu", alpha=-0.5, max_pool=2), "not leaky_relu with alpha -0.5"),
    (lambda: Sequential([Conv2D(8, 3, max_pool=(1, 2)), Flatten(), Dense(2, "softmax")], input_shape=(4, 3, 1)),
     "layer 0 (conv2d): the 1x2 max_pool is larger than the convolution's 2x1 output"),
    (lambda: AvgPool2D(2, strides=0), "AvgPool2D strides must be a positive integer"),
    (lambda: Activation("swish"), "unknown activation 'swish'"),
    (lambda: Activation("relu", alpha=float("nan")), "alpha (the leaky-ReLU slope) must be a finite number"),
    (lambda: Sequential([AvgPool2D(3), Flatten(), Dense(2, "softmax")], input_shape=(2, 4, 1)),
     "the 3x3 pool is larger than the 2x4 input"),
    (lambda: Sequential([GlobalAvgPool2D(), Dense(2, "softmax")], input_shape=8),
     "GlobalAvgPool2D takes (height, width, channels) inputs"),
    (lambda: Dropout(1.0), "rate must be a number in [0, 1)"),
    (lambda: Dropout(-0.1), "rate must be a number in [0, 1)"),
    (lambda: RandomShift(-1), "max_shift must be a non-negative integer or (height, width) of them"),
    (lambda: BatchNorm(momentum=1.5), "momentum must be a number in [0, 1)"),
    (lambda: Reshape((0, 3)), "target_shape must be a positive integer"),
    (lambda: Sequential([Conv2D(8, 5), Flatten(), Dense(2, "softmax")], input_shape=(3, 3, 1)),
     "layer 0 (conv2d): the 5x5 kernel is larger than the 3x3 input"),
    (lambda: Sequential([Conv2D(8, 3), Flatten(), Dense(2, "softmax")], input_shape=784),
     "Conv2D takes (height, width, channels) inputs"),
    (lambda: Sequential([Dense(2, "softmax")], input_shape=(4, 4, 1)), "put a Flatten() before it"),
    (lambda: Sequential([Reshape((5, 5, 1)), Flatten(), Dense(2, "softmax")], input_shape=784),
     "cannot reshape (784,)"),
    (lambda: Sequential([Reshape((28, 28, 1)), Conv2D(2, 3)], input_shape=784), "a loss needs flat outputs"),
    (lambda: Sequential([Dense(2, "softmax")]), "the model's input shape is unknown"),
    (lambda: Sequential([Dense(2, "softmax"), "relu"], input_shape=3), "layer 1 is 'relu', not an xpnet layer"),
    (lambda: layer_from_config({"type": "lstm"}), "unknown layer type 'lstm'"),
    (lambda: layer_from_config({"type": "dense", "units": 3, "colour": "red"}), "(dense) has bad settings"),
])
def test_bad_layers_are_clear_errors(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


def test_wrong_input_shape_for_the_first_layer():
    model = keras_example()
    with pytest.raises(ConfigError, match=r"x has shape \(3, 28, 28\), but the model expects \(samples, 784\)"):
        model.predict(np.zeros((3, 28, 28)))
    images = Sequential([Conv2D(2, 3), Flatten(), Dense(2, "softmax")], input_shape=(5, 5, 1), device="cpu")
    with pytest.raises(ConfigError, match=r"expects \(samples, 5, 5, 1\)"):
        images.predict(np.zeros((3, 25)))
    assert images.predict(np.zeros((3, 5, 5, 1))).shape == (3,)


def test_a_model_file_whose_shapes_disagree_with_its_config(tmp_path):
    model = Sequential([Reshape((4, 4, 1)), Conv2D(2, 3), Flatten(), Dense(2, "softmax")], input_shape=16,
                       device="cpu")
    path = model.save(tmp_path / "m.npz")
    metadata, arrays = read_archive(path)
    layers = metadata["model"]["layers"]
    layers[1]["filters"] = 3
    write_archive(tmp_path / "edited.npz", arrays, metadata)
    with pytest.raises(ModelFileError, match="the file is corrupt or its config was edited"):
        load_model(tmp_path / "edited.npz", device="cpu")


def _edited_cnn_files(folder):
    """A CNN model file, and copies with an unknown layer type and with a config that disagrees with its arrays."""
    model = Sequential([Reshape((28, 28, 1)), Conv2D(2, 3), MaxPool2D(2), Flatten(), Dense(10, "softmax")],
                       input_shape=784, device="cpu")
    metadata, arrays = read_archive(model.save(folder / "cnn.npz"))
    alien = [*metadata["model"]["layers"][:-1], {"type": "capsule", "units": 10}]
    write_archive(folder / "alien.npz", arrays, {**metadata, "model": {**metadata["model"], "layers": alien}})
    wider = [{**layer, "filters": 3} if layer["type"] == "conv2d" else layer for layer in metadata["model"]["layers"]]
    write_archive(folder / "wider.npz", arrays, {**metadata, "model": {**metadata["model"], "layers": wider}})
    return {"alien.npz": "unknown layer type 'capsule'", "wider.npz": "the file is corrupt or its config was edited"}


@pytest.mark.parametrize("command", [["info", "MODEL"], ["evaluate", "MODEL", "--data-dir", "DATA"],
                                     ["predict", "MODEL", "IMAGE"]])
def test_the_cli_refuses_bad_layer_files_in_one_line(command, tmp_path, shared_data):
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(image)
    for name, message in _edited_cnn_files(tmp_path).items():
        model = tmp_path / name
        args = {"DATA": str(shared_data), "IMAGE": str(image), "MODEL": str(model)}
        argv = [args.get(part, part) for part in command]
        before = sorted(path.name for path in tmp_path.iterdir())
        assert_clean_error(xpnet(*argv), message, name)
        assert sorted(path.name for path in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.slow
def test_an_mlp_with_dropout_reaches_98_5_percent_on_mnist(shared_data):
    """The CLI's MLP (784-512-256-10, ReLU, Adam 1e-3 with cosine decay, batch 128, 10 epochs) with dropout 0.2
    after each hidden layer, trained on all 60,000 training images: 98.53% on the test set (seed 0, CPU)."""
    from xpnet.schedules import Cosine
    from xpnet.tasks import TASK_DEFAULTS, build_model, mnist

    task = mnist.load_task(str(shared_data), download=False)
    settings = {**TASK_DEFAULTS["mnist"]["mlp"], "dropout": 0.2}
    model = build_model("mnist", task, settings, get_backend("cpu", "float32", 0, None))
    assert sum(isinstance(layer, Dropout) for layer in model.layers) == 2
    model.optimizer.schedule = Cosine(settings["epochs"])
    model.fit(task.x_train, task.y_train, settings["epochs"], settings["batch_size"], seed=0, verbose=0)
    assert model.evaluate(task.x_test, task.y_test)["accuracy"] >= 0.985
