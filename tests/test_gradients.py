"""Finite-difference checks (float64) of every activation, loss and layer kind, with both kernel sets."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.layers import Dense
from xpnet.model import Model

STEP = 1e-6


def _objective_and_gradient(model: Model, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss the kernels differentiate, and its analytic gradient from one backward pass."""
    n = x.shape[0]
    _, _, buffers = model._workspace(n, training=True)
    stats = np.zeros(2)
    model._forward(x, buffers, derivatives=True)
    model._backward(x, y, buffers, stats)
    return model.loss.objective(stats[0], n), model.buffer[1].copy()


def _objective(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    return _objective_and_gradient(model, x, y)[0]


def _check(model: Model, x: np.ndarray, y: np.ndarray) -> None:
    _, analytic = _objective_and_gradient(model, x, y)
    params = model.buffer[0]
    numeric = np.empty_like(analytic)
    for i in range(params.size):
        original = params[i]
        params[i] = original + STEP
        up = _objective(model, x, y)
        params[i] = original - STEP
        down = _objective(model, x, y)
        params[i] = original
        numeric[i] = (up - down) / (2 * STEP)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


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
    rng = np.random.default_rng(abs(hash((hidden, output))) % 2**32)
    layers = [Dense(4, 5, hidden, alpha=0.1), Dense(5, 3, hidden, alpha=0.1), Dense(3, 3, output)]
    model = Model(layers, loss, "sgd", dtype="float64", seed=1, device="cpu", kernel_mode=kernel_mode)
    x, y = _data(rng, 6, 4, 3, kind)
    _check(model, x, y)


@pytest.mark.parametrize("loss", ["mse", "sse"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "leaky_relu"])
def test_squared_losses_through_every_output_derivative(loss, output):
    model = Model([Dense(3, 4, "tanh"), Dense(4, 4, output, alpha=0.2)], loss, dtype="float64", seed=2, device="cpu")
    x, y = _data(np.random.default_rng(3), 5, 3, 4, "real")
    _check(model, x, y)


@pytest.mark.parametrize("batch", [1, 2, 9])
def test_layers_without_bias_and_single_outputs(batch):
    layers = [Dense(3, 4, "sigmoid", bias=False), Dense(4, 1, "sigmoid", bias=False)]
    model = Model(layers, "binary_crossentropy", dtype="float64", seed=4, device="cpu")
    x, y = _data(np.random.default_rng(batch), batch, 3, 1, "binary")
    _check(model, x, y)
    assert model.parameter_count == 3 * 4 + 4 * 1


def test_a_deep_network():
    layers = [Dense(6, 8, "relu"), Dense(8, 8, "tanh"), Dense(8, 8, "leaky_relu"), Dense(8, 7, "sigmoid"),
              Dense(7, 4, "softmax")]
    model = Model(layers, "cce", dtype="float64", seed=5, device="cpu")
    x, y = _data(np.random.default_rng(6), 11, 6, 4, "onehot")
    _check(model, x, y)
