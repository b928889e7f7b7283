"""The everyday Keras-style API (issue 24): compile, calling a model, get/set_weights, predict's answers."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import BatchNorm, ConfigError, Conv2D, Dense, Flatten, Sequential


def blobs(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two separable classes of 3-feature points, labels 0 and 1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 3)) + 3 * y[:, None], y


def classifier(**kwargs) -> Sequential:
    kwargs.setdefault("lr", 0.05)
    return Sequential([Dense(8, input_dim=3, activation="relu"), Dense(2, activation="softmax")], device="cpu",
                      seed=0, **kwargs)


# ------------------------------------------------------------------------------------------------------- compile
def test_compile_takes_an_optimizer_object_with_options_and_keeps_the_parameters() -> None:
    model = classifier(optimizer="sgd", lr=None)
    before = model.get_parameters()
    assert model.compile(optimizer=xpnet.optimizers.Adam(lr=0.05), loss="categorical_crossentropy",
                         metrics=["accuracy", "mse"]) is model
    assert model.optimizer.name == "adam" and model.optimizer.lr == 0.05
    assert model.moments.shape == (2, model.parameter_count) and not model.moments.any()
    np.testing.assert_array_equal(model.get_parameters(), before)
    x, y = blobs()
    history = model.fit(x, y, epochs=6, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "time", "val_loss", "val_accuracy", "val_mse"}
    scores = model.evaluate(x, y)
    assert set(scores) == {"loss", "accuracy", "mse"} and scores["accuracy"] > 0.9
    assert history.history["val_mse"][-1] < history.history["val_mse"][0]


def test_compile_by_name_with_a_rate_and_metrics_of_a_regression_model() -> None:
    model = Sequential([Dense(1, input_dim=3)], "mse", device="cpu", seed=0)
    model.compile("momentum", lr=0.01, metrics=["mae"])
    assert model.optimizer.describe() == "momentum (lr 0.01)"
    x = np.random.default_rng(1).normal(size=(64, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    first = model.evaluate(x, y)
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    last = model.evaluate(x, y)
    assert set(last) == {"loss", "mae"} and last["mae"] < first["mae"] / 2


def test_the_metrics_are_saved_with_the_model(tmp_path) -> None:
    model = classifier(metrics=["mae", "accuracy"])
    loaded = xpnet.load_model(model.save(tmp_path / "m.npz"))
    assert loaded.metrics == ("mae", "accuracy")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"optimizer": "adagrad"}, "unknown optimizer 'adagrad'"),
    ({"optimizer": "adam", "lr": -1.0}, "learning rate must be a positive number"),
    ({"loss": "nope"}, "nope"),
    ({"metrics": ["f1"]}, "unknown metric 'f1'"),
    ({"metrics": "accuracy"}, "metrics must be a list of names"),
    ({"loss": "mse", "metrics": ["accuracy"]}, None),  # a softmax output with MSE is still a classifier
])
def test_compile_refuses_bad_settings_and_changes_nothing(kwargs: dict, message: str | None) -> None:
    model = classifier()
    if message is None:
        model.compile(**kwargs)
        assert model.loss.name == "mse" and model.metrics == ("accuracy",)
        return
    optimizer, loss = model.optimizer, model.loss
    with pytest.raises(ConfigError, match=message):
        model.compile(**kwargs)
    assert model.optimizer is optimizer and model.loss is loss and model.metrics == ("accuracy",)


def test_accuracy_is_refused_for_a_model_that_predicts_values() -> None:
    model = Sequential([Dense(1, input_dim=3)], "mse", device="cpu")
    with pytest.raises(ConfigError, match="accuracy needs a classifier"):
        model.compile(metrics=["accuracy"])


# ------------------------------------------------------------------------------------------------- model(x)
def test_calling_a_model_gives_its_outputs_for_a_batch_or_one_sample() -> None:
    model = classifier()
    x, _ = blobs(5)
    np.testing.assert_array_equal(model(x), model.predict_proba(x))
    assert model(x).shape == (5, 2)
    np.testing.assert_array_equal(model(x[0]), model.predict_proba(x)[0])


# ---------------------------------------------------------------------------------------- get_weights/set_weights
def test_weights_are_per_layer_in_keras_order_and_round_trip() -> None:
    model = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), BatchNorm(), Flatten(),
                        Dense(3, activation="softmax")], device="cpu", seed=0)
    shapes = [[w.shape for w in layer.get_weights()] for layer in model.layers]
    assert shapes == [[(9, 2), (2,)], [(2,), (2,), (2,), (2,)], [], [(18, 3), (3,)]]
    weights = model.get_weights()
    assert [w.shape for w in weights] == [s for layer in shapes for s in layer]
    twin = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), BatchNorm(), Flatten(),
                       Dense(3, activation="softmax")], device="cpu", seed=1)
    twin.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 1))
    np.testing.assert_array_equal(twin(x), model(x))
    model.layers[3].set_weights([np.ones((18, 3)), np.zeros(3)])
    np.testing.assert_array_equal(model.layers[3].get_weights()[0], np.ones((18, 3)))
    np.testing.assert_array_equal(model.get_parameters()[-57:], [1.0] * 54 + [0.0] * 3)  # the flat buffer


def test_set_weights_refuses_a_wrong_count_or_shape_in_one_line_and_changes_nothing() -> None:
    model = classifier()
    weights = model.get_weights()
    with pytest.raises(ConfigError, match=r"set_weights needs a list of 4 arrays .*got 3"):
        model.set_weights(weights[:3])
    bad = [np.zeros_like(weights[0]), np.zeros_like(weights[1]), np.zeros((2, 8)), weights[3]]
    with pytest.raises(ConfigError, match=r"layer 1: dense weight W must be finite numbers of shape \(8, 2\), got "
                                          r"shape \(2, 8\)"):
        model.set_weights(bad)
    for got, kept in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, kept)
    with pytest.raises(ConfigError, match="not part of a model yet"):
        Dense(3).get_weights()


# --------------------------------------------------------------------------------------------------- predict
def test_predict_returns_the_class_names_of_a_model_trained_on_names() -> None:
    x, y = blobs()
    names = np.array(["cat", "dog"])[y]
    model = classifier()
    model.fit(x, names, epochs=5, batch_size=16, verbose=0)
    assert model.class_names == ["cat", "dog"]
    predicted = model.predict(x)
    assert predicted.dtype.kind == "U" and (predicted == names).mean() > 0.9
    np.testing.assert_array_equal(model.predict(x, names=False), (predicted == "dog").astype(int))
    assert model.predict(x[1]) == predicted[1] and isinstance(model.predict(x[1]), str)


def test_predict_keeps_indices_for_integer_labels_and_index_names() -> None:
    x, y = blobs()
    for model in (classifier(), classifier(class_names=["0", "1"])):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        assert model.predict(x).dtype.kind == "i"
        assert isinstance(model.predict(x[0]), int)


def test_predict_takes_one_image_with_or_without_its_channel_axis() -> None:
    model = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Flatten(), Dense(3, activation="softmax")],
                       device="cpu", seed=0)
    images = np.random.default_rng(0).normal(size=(3, 5, 5, 1))
    batch = model.predict(images)
    assert [model.predict(image) for image in images] == list(batch)
    assert model.predict(images[2, :, :, 0]) == batch[2]


def test_a_regression_model_answers_one_sample_with_its_value() -> None:
    model = Sequential([Dense(1, input_dim=3)], "mse", device="cpu", seed=0)
    x = np.ones((2, 3))
    assert isinstance(model.predict(x[0]), float) and model.predict(x[0]) == pytest.approx(model.predict(x)[0])
    one_input = Sequential([Dense(1, input_dim=1)], "mse", device="cpu", seed=0)
    assert one_input.predict(np.array([1.0, 2.0])).shape == (2,)  # a vector: one value per sample
    assert isinstance(one_input.predict(2.0), float)
