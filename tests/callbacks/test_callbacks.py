"""EarlyStopping: when it stops, what it restores, its settings, and its use as a ``fit`` callback."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import ConfigError
from xpnet.callbacks import EarlyStopping
from xpnet.layers import Dense
from xpnet.model import Model


def tiny_model() -> Model:
    return Model([Dense(1, input_dim=1)], "mse", "sgd", device="cpu", seed=0)


def drive(stopper: EarlyStopping, model: Model, values: list[float], monitor: str = "val_loss") -> int:
    """Feed ``values`` as the monitored metric of epochs 1, 2, ..., the parameters of epoch k being [k, 0],
    until the callback stops training; return the last epoch run. (Outside a fit there is no run to stop: the
    callback's ``stopped_epoch`` says when it would have; the fit tests below check that it does.)"""
    for epoch, value in enumerate(values, start=1):
        model.set_parameters(np.array([epoch, 0.0]))
        stopper(model, epoch, {"loss": 0.0, monitor: value})
        if stopper.stopped_epoch:
            assert stopper.stopped_epoch == epoch
            return epoch
    return len(values)


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best() -> None:
    model, stopper = tiny_model(), EarlyStopping(patience=3)
    assert drive(stopper, model, [3.0, 2.0, 1.0, 1.5, 1.2, 1.1, 0.5]) == 6
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (1.0, 3, 6)
    np.testing.assert_array_equal(model.get_parameters(), [3.0, 0.0])


def test_patience_zero_stops_at_the_first_epoch_without_improvement() -> None:
    assert drive(EarlyStopping(), tiny_model(), [3.0, 2.0, 2.0, 1.0]) == 3


def test_an_improvement_resets_the_wait() -> None:
    stopper = EarlyStopping(patience=2)
    assert drive(stopper, tiny_model(), [3.0, 3.5, 2.0, 2.5, 1.0, 1.1, 1.2, 0.1]) == 7
    assert stopper.best_epoch == 5


def test_improvements_smaller_than_min_delta_do_not_count() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    assert drive(stopper, tiny_model(), [1.0, 0.95, 0.92, 0.5]) == 3
    assert stopper.best_epoch == 1


def test_without_restore_best_the_last_parameters_stay() -> None:
    model = tiny_model()
    assert drive(EarlyStopping(patience=1, restore_best=False), model, [1.0, 2.0, 3.0]) == 2
    np.testing.assert_array_equal(model.get_parameters(), [2.0, 0.0])


def test_runs_that_never_stop_leave_the_parameters_alone() -> None:
    model, stopper = tiny_model(), EarlyStopping(patience=5)
    assert drive(stopper, model, [3.0, 2.0, 2.5]) == 3
    assert stopper.stopped_epoch == 0
    np.testing.assert_array_equal(model.get_parameters(), [3.0, 0.0])


@pytest.mark.parametrize(
    ("monitor", "mode"), [("val_accuracy", "auto"), ("accuracy", "auto"), ("val_loss", "max")]
)
def test_higher_is_better_for_accuracies_or_when_asked(monitor: str, mode: str) -> None:
    stopper = EarlyStopping(monitor, patience=2, mode=mode)
    assert stopper.mode == "max"
    assert drive(stopper, tiny_model(), [0.5, 0.7, 0.6, 0.65, 0.9], monitor) == 4
    assert (stopper.best, stopper.best_epoch) == (0.7, 2)


def test_a_missing_metric_is_a_config_error_that_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"'val_loss'.*validation_split.*available: accuracy, loss"):
        EarlyStopping()(tiny_model(), 1, {"loss": 1.0, "accuracy": 0.5})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"patience": -1}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"patience": True}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"min_delta": float("nan")}, "min_delta"),
        ({"mode": "up"}, "mode"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EarlyStopping(**settings)


def test_one_instance_starts_afresh_for_each_training_run() -> None:
    stopper, first, second = EarlyStopping(patience=1), tiny_model(), tiny_model()
    assert drive(stopper, first, [1.0, 0.5, 0.7]) == 3
    assert drive(stopper, first, [2.0, 1.5, 1.0, 1.2]) == 4  # epochs restart at 1: a new run
    assert stopper.best_epoch == 3
    assert drive(stopper, second, [2.0, 1.9, 1.8]) == 3  # another model
    assert stopper.best_epoch == 3 and stopper.stopped_epoch == 0


def test_stops_fit_and_restores_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    y = (x[:, 0] > 0).astype(np.int64)
    model = Model([Dense(1, "sigmoid", input_dim=2)], "bce", "sgd", lr=0.5, device="cpu", seed=0)
    recorded: list[np.ndarray] = []
    stopper = EarlyStopping(patience=3)
    # validating on the opposite labels: the better the model learns, the worse its validation loss
    history = model.fit(x, y, epochs=100, batch_size=20, validation_data=(x, 1 - y), verbose=0,
                        callbacks=[lambda m, epoch, logs: recorded.append(m.get_parameters()), stopper])
    assert len(history.epoch) == stopper.stopped_epoch == stopper.best_epoch + 3 < 100
    assert stopper.best == min(history.history["val_loss"])
    np.testing.assert_array_equal(model.get_parameters(), recorded[stopper.best_epoch - 1])
