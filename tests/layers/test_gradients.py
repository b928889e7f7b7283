"""Finite-difference checks (float64) of every activation, loss and layer kind, alone and stacked, with both
kernel sets: the analytic gradient of every parameter (and, through the layers below, of every input) must match
central differences of the loss the kernels differentiate."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from xpnet.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    RandomShift,
    Reshape,
)
from xpnet.model import Model

STEP = 1e-6


def _objective_and_gradient(model: Model, x: np.ndarray, y: np.ndarray, training: bool) -> tuple[float, np.ndarray]:
    """The loss the kernels differentiate, and its analytic gradient from one backward pass."""
    n = x.shape[0]
    stats = np.zeros(2)
    model.compute_gradients(x.reshape(n, -1), y, model.workspace(n, backward=True), stats, training)
    return model.loss.objective(stats[0], n), model.buffer[1].copy()


def _objective(model: Model, x: np.ndarray, y: np.ndarray, training: bool) -> float:
    return _objective_and_gradient(model, x, y, training)[0]


def _check(model: Model, x: np.ndarray, y: np.ndarray, training: bool = True) -> None:
    _, analytic = _objective_and_gradient(model, x, y, training)
    params = model.buffer[0]
    numeric = np.empty_like(analytic)
    for i in range(params.size):
        original = params[i]
        params[i] = original + STEP
        up = _objective(model, x, y, training)
        params[i] = original - STEP
        down = _objective(model, x, y, training)
        params[i] = original
        numeric[i] = (up - down) / (2 * STEP)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def _move_off_kinks(model: Model, rng: np.random.Generator) -> None:
    """Give every parameter, biases included, a random offset. With zero biases, a row whose ReLUs are all off
    feeds the next ReLU exactly 0, its kink, where central differences average two one-sided slopes."""
    params = model.buffer[0]
    params += rng.uniform(-0.2, 0.2, params.size)


def _data(rng, n, n_in, n_out, kind):
    x = rng.standard_normal((n, n_in))
    if kind == "onehot":
        y = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif kind == "binary":
        y = (rng.random((n, n_out)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((n, n_out))
    return x, y


CASES = [
    # hidden activation, output activation, loss, target kind
    (hidden, output, loss, kind)
    for hidden in ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
    for output, loss, kind in (
        ("softmax", "categorical_crossentropy", "onehot"),
        ("sigmoid", "binary_crossentropy", "binary"),
        ("identity", "mse", "real"),
        ("tanh", "sse", "real"),
    )
]


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize(("hidden", "output", "loss", "kind"), CASES)
def test_gradients_match_finite_differences(kernel_mode, hidden, output, loss, kind):
    rng = np.random.default_rng(zlib.crc32(f"{hidden}-{output}".encode()))
    layers = [Dense(5, hidden, input_dim=4, alpha=0.1), Dense(3, hidden, alpha=0.1), Dense(3, output)]
    model = Model(layers, loss, "sgd", dtype="float64", seed=1, device="cpu", kernel_mode=kernel_mode)
    x, y = _data(rng, 6, 4, 3, kind)
    _move_off_kinks(model, rng)
    _check(model, x, y)


@pytest.mark.parametrize("loss", ["mse", "sse"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "leaky_relu"])
def test_squared_losses_through_every_output_derivative(loss, output):
    model = Model([Dense(4, "tanh", input_dim=3), Dense(4, output, alpha=0.2)], loss, dtype="float64", seed=2,
                  device="cpu")
    x, y = _data(np.random.default_rng(3), 5, 3, 4, "real")
    _check(model, x, y)


@pytest.mark.parametrize("batch", [1, 2, 9])
def test_layers_without_bias_and_single_outputs(batch):
    layers = [Dense(4, "sigmoid", input_dim=3, bias=False), Dense(1, "sigmoid", bias=False)]
    model = Model(layers, "binary_crossentropy", dtype="float64", seed=4, device="cpu")
    x, y = _data(np.random.default_rng(batch), batch, 3, 1, "binary")
    _check(model, x, y)
    assert model.parameter_count == 3 * 4 + 4 * 1


def test_a_deep_network():
    layers = [Dense(8, "relu", input_dim=6), Dense(8, "tanh"), Dense(8, "leaky_relu"), Dense(7, "sigmoid"),
              Dense(4, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=5, device="cpu")
    x, y = _data(np.random.default_rng(6), 11, 6, 4, "onehot")
    _check(model, x, y)


def _image_data(rng, n, shape, classes):
    return rng.standard_normal((n, *shape)), np.eye(classes)[rng.integers(0, classes, n)]


CONVOLUTIONS = [
    # kernel, strides, padding
    (3, 1, "valid"),
    (3, 2, "same"),
    ((2, 3), (2, 1), "valid"),
    ((3, 2), 1, "same"),
]


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize(("kernel", "strides", "padding"), CONVOLUTIONS)
def test_conv2d_alone(kernel_mode, kernel, strides, padding):
    layers = [Conv2D(3, kernel, strides, padding, "tanh", input_shape=(6, 5, 2)), Flatten(), Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=7, device="cpu", kernel_mode=kernel_mode)
    x, y = _image_data(np.random.default_rng(8), 3, (6, 5, 2), 3)
    _check(model, x, y)


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
def test_stacked_convolutions_pooling_and_input_gradients(kernel_mode):
    """Two convolutions with a max-pool between: the first conv's gradients pass through col2im and the pool."""
    layers = [Reshape((7, 7, 1), input_shape=49), Conv2D(2, 3, padding="same", activation="leaky_relu", alpha=0.1),
              MaxPool2D(2), Conv2D(3, 2, activation="sigmoid"), MaxPool2D((1, 2), strides=1), Flatten(),
              Dense(2, "sigmoid")]
    model = Model(layers, "bce", dtype="float64", seed=9, device="cpu", kernel_mode=kernel_mode)
    rng = np.random.default_rng(10)
    _check(model, rng.standard_normal((4, 49)), (rng.random((4, 2)) > 0.5).astype(float))


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize(("activation", "pool"), [("relu", 2), ("leaky_relu", (2, 3)), ("sigmoid", (3, 1)),
                                                  ("tanh", 2), ("identity", (1, 2))])
def test_convolutions_that_max_pool_before_their_activation(kernel_mode, activation, pool):
    """Conv2D(max_pool=...) on odd sizes (the pool drops the last row or column), two of them stacked: the first
    one's gradients pass back through the second one's scatter and col2im."""
    layers = [Reshape((7, 7, 2), input_shape=98),
              Conv2D(3, 3, padding="same", activation=activation, alpha=0.2, max_pool=pool),
              Conv2D(2, 1, activation="sigmoid", max_pool=(1, 2)), Flatten(), Dense(2, "sigmoid")]
    model = Model(layers, "bce", dtype="float64", seed=13, device="cpu", kernel_mode=kernel_mode)
    rng = np.random.default_rng(14)
    _move_off_kinks(model, rng)
    _check(model, rng.standard_normal((3, 98)), (rng.random((3, 2)) > 0.5).astype(float))


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
def test_overlapping_pools(kernel_mode):
    layers = [Conv2D(2, 2, activation="relu", input_shape=(6, 6, 1)), MaxPool2D(3, strides=2), Flatten(),
              Dense(2, "identity")]
    model = Model(layers, "mse", dtype="float64", seed=11, device="cpu", kernel_mode=kernel_mode)
    rng = np.random.default_rng(12)
    _check(model, rng.standard_normal((3, 6, 6, 1)), rng.standard_normal((3, 2)))


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
def test_dropout_with_its_fixed_mask(kernel_mode):
    """In training the mask depends only on (seed, step, index): fixed while the differences are taken."""
    layers = [Dense(6, "tanh", input_dim=4), Dropout(0.4), Dense(5, "relu"), Dropout(0.25), Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=13, device="cpu", kernel_mode=kernel_mode)
    x, y = _data(np.random.default_rng(14), 7, 4, 3, "onehot")
    _check(model, x, y)


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
def test_random_shift_with_its_fixed_shifts(kernel_mode):
    """Between two convolutions (so its backward pass runs); in training the shifts depend only on (seed, step,
    image), fixed while the differences are taken. Shifts past half the image, and ones along one axis. Smooth
    activations: a window wholly in the zero fill gives z = b, exactly at ReLU's kink while b is 0."""
    layers = [Reshape((5, 6, 2), input_shape=60), Conv2D(3, 3, padding="same", activation="tanh"), RandomShift((3, 4)),
              Conv2D(2, 2, activation="sigmoid"), RandomShift((0, 1)), Flatten(), Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=19, device="cpu", kernel_mode=kernel_mode)
    x, y = _image_data(np.random.default_rng(20), 6, (60,), 3)
    _check(model, x, y)


@pytest.mark.parametrize("training", [True, False], ids=["batch-statistics", "running-statistics"])
@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
def test_batch_norm_in_both_modes(kernel_mode, training):
    layers = [Dense(5, "identity", input_dim=4), BatchNorm(momentum=0.9), Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=15, device="cpu", kernel_mode=kernel_mode)
    model.set_state(np.concatenate([np.linspace(-0.5, 0.5, 5), np.linspace(0.5, 2.0, 5)]))
    x, y = _data(np.random.default_rng(16), 6, 4, 3, "onehot")
    _check(model, x, y, training)


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
def test_a_small_cnn_with_every_layer_kind(kernel_mode):
    layers = [Reshape((6, 6, 2), input_shape=72), Conv2D(3, 3, padding="same", activation="relu"), BatchNorm(),
              MaxPool2D(2), Dropout(0.3), Conv2D(4, 2, activation="tanh"), Flatten(), Dense(5, "relu"),
              Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=17, device="cpu", kernel_mode=kernel_mode)
    x, y = _image_data(np.random.default_rng(18), 5, (72,), 3)
    _check(model, x, y)


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize(("pool", "strides"), [(2, None), (3, 2), ((2, 3), 1)])
def test_average_pools(kernel_mode, pool, strides):
    """AvgPool2D (tiling, overlapping and uneven windows) and GlobalAvgPool2D between convolutions."""
    layers = [Conv2D(2, 2, activation="tanh", input_shape=(7, 6, 2)), AvgPool2D(pool, strides),
              Conv2D(3, 1, activation="sigmoid"), GlobalAvgPool2D(), Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=21, device="cpu", kernel_mode=kernel_mode)
    x, y = _image_data(np.random.default_rng(22), 4, (7, 6, 2), 3)
    _check(model, x, y)


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "leaky_relu", "softmax"])
def test_conv_batch_norm_activation(kernel_mode, activation):
    """Conv2D without an activation, BatchNorm, then the nonlinearity as a layer of its own."""
    layers = [Conv2D(3, 2, input_shape=(4, 4, 2)), BatchNorm(), Activation(activation, alpha=0.2), Flatten(),
              Dense(3, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=23, device="cpu", kernel_mode=kernel_mode)
    x, y = _image_data(np.random.default_rng(24), 5, (4, 4, 2), 3)
    _check(model, x, y)


@pytest.mark.parametrize("kernel_mode", ["fused", "reference"])
@pytest.mark.parametrize(("output", "loss", "kind"), [("softmax", "cce", "onehot"), ("sigmoid", "bce", "binary"),
                                                      ("tanh", "mse", "real")])
def test_activation_as_the_output_layer(kernel_mode, output, loss, kind):
    """An Activation last: a loss fused with it reads its z; others go through its backward pass."""
    layers = [Dense(4, "identity", input_dim=3), Activation(output)]
    model = Model(layers, loss, dtype="float64", seed=25, device="cpu", kernel_mode=kernel_mode)
    x, y = _data(np.random.default_rng(26), 6, 3, 4, kind)
    _check(model, x, y)
