"""The Model API: training modes, history, predictions, determinism, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import ConfigError, DataError, DeviceError, TrainingError
from xpnet import model as model_module
from xpnet.builders import from_layer_dicts, mlp
from xpnet.layers import Conv2D, Dense, Flatten, MaxPool2D
from xpnet.model import Model


def _blobs(n=300, seed=0):
    """Three well separated Gaussian clusters in 4 dimensions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype=float)
    return centres[labels] + rng.standard_normal((n, 4)) * 0.5, labels


@pytest.mark.parametrize("batch_size", [None, 32, 1])
def test_full_mini_and_online_batches_learn(batch_size):
    x, y = _blobs()
    model = mlp([4, 8, 3], "tanh", seed=0, device="cpu", optimizer="sgd", lr=0.1)
    history = model.fit(x, y, epochs=30 if batch_size is None else 5, batch_size=batch_size, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y)["accuracy"] > 0.95
    expected_steps = {None: 30, 32: 5 * 10, 1: 5 * 300}[batch_size]
    assert model.step == expected_steps


def test_history_with_validation_split_and_data():
    x, y = _blobs()
    model = mlp([4, 8, 3], seed=1, device="cpu")
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "time", "val_loss", "val_accuracy"}
    assert history.epoch == [1, 2, 3]
    assert history.history["val_accuracy"][-1] == model.evaluate(x[-60:], y[-60:])["accuracy"]
    again = model.fit(x[:200], y[:200], epochs=1, validation_data=(x[200:], y[200:]), verbose=0)
    assert len(again.history["val_loss"]) == 1


def test_same_seed_same_model_and_training():
    x, y = _blobs()
    runs = []
    for _ in range(2):
        model = mlp([4, 8, 3], seed=7, device="cpu")
        model.fit(x, y, epochs=2, batch_size=10, seed=3, verbose=0)
        runs.append(model.get_parameters())
    np.testing.assert_array_equal(*runs)
    other = mlp([4, 8, 3], seed=8, device="cpu").get_parameters()
    assert not np.array_equal(runs[0], other)


def test_fused_and_reference_kernels_train_alike():
    x, y = _blobs()
    params = []
    for mode in ("fused", "reference"):
        model = mlp([4, 8, 3], seed=2, device="cpu", dtype="float64", kernel_mode=mode)
        model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
        params.append(model.get_parameters())
    np.testing.assert_allclose(params[0], params[1], rtol=1e-9, atol=1e-12)


def test_predict_and_predict_proba():
    x, y = _blobs()
    model = mlp([4, 8, 3], seed=0, device="cpu")
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    proba = model.predict_proba(x)
    assert proba.shape == (300, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x), proba.argmax(axis=1))
    binary = Model([Dense(1, "sigmoid", input_dim=4)], "bce", seed=0, device="cpu")
    binary.fit(x, (y == 0).astype(float), epochs=20, batch_size=None, verbose=0)
    assert set(np.unique(binary.predict(x))) <= {0, 1}
    assert binary.evaluate(x, (y == 0).astype(float))["accuracy"] > 0.9


def test_large_inputs_are_predicted_in_chunks(monkeypatch):
    monkeypatch.setattr("xpnet.model.PREDICT_CHUNK", 7)
    x, _ = _blobs(50)
    model = mlp([4, 5, 3], seed=0, device="cpu")
    chunked = model.predict_proba(x)
    monkeypatch.setattr("xpnet.model.PREDICT_CHUNK", 1000)
    np.testing.assert_allclose(chunked, model.predict_proba(x), rtol=1e-6)


def test_inference_passes_fit_the_backends_budget(monkeypatch):
    """A pass's rows follow from the layer buffers a row needs: the CPU's 16 MiB hold 79 rows of this CNN (its
    patch matrices and activations take 211,216 bytes a row) where 8192 rows would take 1.7 GB; an MLP's passes take
    thousands of rows, a tiny one PREDICT_CHUNK; evaluation gives the same answer at any size of pass."""
    cnn = Model([Conv2D(8, 3, activation="relu", padding="same", input_shape=(28, 28, 1)), MaxPool2D(2),
                 Conv2D(32, 3, activation="relu", padding="same"), MaxPool2D(2), Flatten(), Dense(128, "relu"),
                 Dense(10, "softmax")], "categorical_crossentropy", seed=0, device="cpu")
    # float32 and int32: each convolution's patches (9 and 72 columns) and z and a, each pool's output and argmax
    per_row = 4 * (28 * 28 * (9 + 2 * 8) + 2 * 14 * 14 * 8 + 14 * 14 * (72 + 2 * 32) + 2 * 7 * 7 * 32
                   + 2 * 128 + 2 * 10)
    assert cnn.inference_rows() == (16 << 20) // per_row == 79
    mlp_rows = mlp([784, 256, 128, 10], seed=0, device="cpu").inference_rows()
    assert mlp_rows == (16 << 20) // (4 * 2 * (256 + 128 + 10)) == 5322  # z and a of each layer
    assert mlp([4, 5, 3], seed=0, device="cpu").inference_rows() == model_module.PREDICT_CHUNK
    x = np.random.default_rng(0).random((200, 28, 28, 1), dtype=np.float32)
    labels = np.arange(200) % 10
    whole = cnn.evaluate(x, labels)
    monkeypatch.setattr(type(cnn.backend), "inference_bytes", per_row * 3)  # passes of 3 rows, the last of 2
    assert cnn.inference_rows() == 3
    assert cnn.evaluate(x, labels) == pytest.approx(whole, rel=1e-6)


def test_layer_dicts_and_short_form_build_the_same_network():
    dicts = [{"input_dim": 2, "output_dim": 4, "activation": "relu"},
             {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"}]
    a = from_layer_dicts(dicts, loss="bce", seed=3, device="cpu")
    b = mlp([2, 4, 1], "relu", "sigmoid", loss="bce", seed=3, device="cpu")
    assert a.summary(print_fn=None) == b.summary(print_fn=None)
    np.testing.assert_array_equal(a.get_parameters(), b.get_parameters())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: mlp([4, 3], "relu", "swish"), "unknown activation 'swish'"),
        (lambda: mlp([4, 3], optimizer="adagrad"), "unknown optimizer 'adagrad'"),
        (lambda: mlp([4, 3], loss="hinge"), "unknown loss 'hinge'"),
        (lambda: mlp([4, 3], "relu", "sigmoid", loss="cce"), "needs a softmax output layer"),
        (lambda: Model([Dense(3, input_dim=4), Dense(1, input_dim=2)]),
         "layer 1 (dense) expects inputs of shape (2,), but layer 0 gives (3,)"),
        (lambda: mlp([4, 3], lr=-1), "learning rate must be a positive number"),
        (lambda: mlp([4, 3], dtype="float16"), "unsupported dtype"),
        (lambda: from_layer_dicts([{"input_dim": 2, "units": 3}]), "unknown keys ['units']"),
        (lambda: mlp([4, 3], device="tpu"), "unknown device 'tpu'"),
    ],
)
def test_bad_configuration_is_a_clear_error(build, message):
    with pytest.raises(ConfigError, match=None) as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("x", "y", "error", "message"),
    [
        (np.zeros((5, 3)), np.zeros(5, int), ConfigError, "expects (samples, 4)"),
        (np.zeros((5, 4)), np.zeros(4, int), ConfigError, "has 4 rows but x has 5 samples"),
        (np.zeros((5, 4)), np.array([0, 1, 2, 3, 0]), DataError, "label 3, outside the model's 3 classes"),
        (np.zeros((5, 4)), np.array([0, 1, -1, 2, 0]), DataError, "label -1"),
        (np.zeros((5, 4)), np.full(5, 0.5), DataError, "non-integer class labels"),
        (np.full((5, 4), np.nan), np.zeros(5, int), DataError, "x contains 20 NaN or infinite values"),
        (np.where(np.arange(20).reshape(5, 4) == 7, -np.inf, 0.0), np.zeros(5, int), DataError,
         "x contains 1 NaN or infinite value;"),
        (np.zeros((5, 4)), np.zeros((5, 2)), ConfigError, "the model has 3 outputs"),
        (np.zeros((0, 4)), np.zeros(0, int), DataError, "is empty"),
        (np.array([["a"] * 4] * 5), np.zeros(5, int), DataError, "expected numbers"),
    ],
)
def test_bad_training_data_is_a_clear_error(x, y, error, message):
    model = mlp([4, 3], seed=0, device="cpu")
    with pytest.raises(error) as info:
        model.fit(x, y, verbose=0)
    assert message in str(info.value)


def test_bad_fit_settings():
    x, y = _blobs(20)
    model = mlp([4, 3], seed=0, device="cpu")
    for kwargs, message in [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epochs": -1}, "epochs must be a non-negative integer"),
        ({"validation_split": 1.5}, "validation_split must be in [0, 1)"),
        ({"validation_split": 0.2, "validation_data": (x, y)}, "not both"),
    ]:
        with pytest.raises(ConfigError) as info:
            model.fit(x, y, verbose=0, **kwargs)
        assert message in str(info.value)


def test_nan_loss_stops_with_the_step_and_a_suggestion():
    x, y = _blobs()
    model = mlp([4, 16, 3], "relu", "identity", loss="mse", optimizer="sgd", lr=1e4, seed=0, device="cpu")
    with pytest.raises(TrainingError) as info:
        model.fit(x * 100, np.eye(3)[y], epochs=5, batch_size=10, verbose=0)
    text = str(info.value)
    assert "epoch 1, step" in text and "learning rate 10000" in text and "lower the learning rate" in text
    assert "--" not in text and info.value.hint == "try --lr 1000"  # the flag is the command line's advice


def test_stop_training_leaves_the_epoch_open_for_a_resume():
    x, y = _blobs()
    model = mlp([4, 8, 3], seed=0, device="cpu")

    def stop_after_first(m, epoch, logs):
        m.stop_training = True

    history = model.fit(x, y, epochs=5, batch_size=30, verbose=0, callbacks=[stop_after_first])
    assert history.epoch == [1] and model.position.epoch == 1 and model.position.batch == 0


def test_models_on_one_backend_shuffle_independently():
    """Each fit shuffles with its own generator (seeded by one draw from the backend's when no seed is given):
    training another model on the same backend between its epochs leaves its batch order, and so its result,
    unchanged."""
    from xpnet.backend import get_backend

    x, y = _blobs(90)

    def trained(with_neighbour: bool) -> np.ndarray:
        backend = get_backend("cpu", "float64", seed=4)
        model, neighbour = mlp([4, 8, 3], backend=backend), mlp([4, 8, 3], backend=backend)

        def train_neighbour(m, epoch, logs):
            neighbour.fit(x, y, epochs=1, batch_size=10, verbose=0)

        model.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[train_neighbour] if with_neighbour else [])
        return model.get_parameters()

    np.testing.assert_array_equal(trained(True), trained(False))


def test_the_optimizer_schedule_sets_the_rate_of_every_step_from_the_fractional_epoch(monkeypatch):
    from xpnet.optimizers import SGD
    from xpnet.schedules import Cosine

    x, y = _blobs(40)
    model = mlp([4, 3], seed=0, device="cpu", optimizer=SGD(0.1, schedule=Cosine(2)))
    asked, rates = [], []
    rate = SGD.rate

    def recorded(optimizer, progress=0.0):
        asked.append(progress)
        rates.append(rate(optimizer, progress))
        return rates[-1]

    monkeypatch.setattr(SGD, "rate", recorded)
    model.fit(x, y, epochs=2, batch_size=10, verbose=0)
    np.testing.assert_allclose(asked, np.arange(8) / 4)
    np.testing.assert_allclose(rates, 0.05 * (1 + np.cos(np.pi * np.arange(8) / 8)))
    assert model.optimizer.lr == 0.1  # the configured rate stays: the schedule never overwrites it
    decay = Cosine(2)
    assert decay.rate(0.1, 0) == 0.1 and decay.rate(0.1, 2) == 0.0 and decay.rate(0.1, 5) == 0.0


def test_running_out_of_memory_names_the_batch_size(monkeypatch):
    x, y = _blobs(40)
    model = mlp([4, 3], seed=0, device="cpu")

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 9.5 GiB")

    monkeypatch.setattr(model, "workspace", exhausted)
    with pytest.raises(DeviceError, match="CPU ran out of memory at batch size 16 .*smaller batch size") as info:
        model.fit(x, y, batch_size=16, verbose=0)
    assert info.value.hint == "try --batch-size 8"


def test_class_name_labels_become_the_models_class_names():
    x, y = _blobs()
    names = np.array(["circle", "square", "triangle"])[y]
    model = mlp([4, 8, 3], "relu", seed=0, device="cpu")
    history = model.fit(x, names, epochs=5, batch_size=32, verbose=0, validation_data=(x[:30], names[:30]))
    assert model.class_names == ["circle", "square", "triangle"]  # sorted, kept for saving and `xpnet predict`
    assert history.history["val_accuracy"][-1] > 0.95
    assert model.evaluate(x, names)["accuracy"] == model.evaluate(x, y)["accuracy"]
    with pytest.raises(DataError, match="'hexagon', which is not one of the model's classes"):
        model.evaluate(x[:2], ["circle", "hexagon"])
    with pytest.raises(DataError, match="names 2 classes, but the model has 3"):
        mlp([4, 3], seed=0, device="cpu").fit(x[:20], ["a", "b"] * 10, verbose=0)


def test_a_regression_model_reports_errors_and_predicts_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 3.0
    model = mlp([3, 1], output_activation="identity", loss="mse", optimizer="adam", lr=0.05, seed=0, device="cpu")
    assert model.is_regression and not mlp([3, 1], output_activation="sigmoid", loss="mse", device="cpu").is_regression
    assert not mlp([3, 10], output_activation="relu", loss="sse", device="cpu").is_regression  # a tutorial classifier
    history = model.fit(x, y, epochs=40, batch_size=32, verbose=0, validation_split=0.2)
    assert "accuracy" not in history.history and "val_accuracy" not in history.history
    assert history.history["val_mae"][-1] < 0.1
    metrics = model.evaluate(x, y)
    assert set(metrics) == {"loss", "mse", "mae"} and metrics["mae"] < 0.1
    predicted = model.predict(x[:5])
    assert predicted.shape == (5,) and np.allclose(predicted, y[:5], atol=0.3)  # values, not 0/1 classes
    with pytest.raises(DataError, match="predicts values"):
        model.fit(x[:4], ["a", "b", "a", "b"], verbose=0)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [({"name": "triangle"}, "unknown learning-rate schedule 'triangle'"), ({"name": "cosine", "epochs": -1}, "epochs"),
     ({"name": "cosine", "epochs": 2, "floor": float("nan")}, "floor"), ("cosine", "not a learning-rate schedule")],
)
def test_an_optimizer_refuses_a_bad_schedule(schedule, message):
    from xpnet.optimizers import get_optimizer

    with pytest.raises(ConfigError, match=message):
        get_optimizer({"name": "adam", "lr": 1e-3, "schedule": schedule})
