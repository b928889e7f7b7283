"""Keras's callbacks beyond EarlyStopping (issue 24): ModelCheckpoint, CSVLogger, LearningRateScheduler,
ReduceLROnPlateau and LambdaCallback, each through a real ``fit`` and on its own."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import (
    ConfigError,
    CSVLogger,
    Dense,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    Sequential,
)
from xpnet.schedules import Cosine


def blobs(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 3)) + 3 * y[:, None], y


def classifier(optimizer: object = "adam") -> Sequential:
    return Sequential([Dense(8, input_dim=3, activation="relu"), Dense(2, activation="softmax")],
                      optimizer=optimizer, device="cpu", seed=0, lr=0.05, class_names=["no", "yes"])


def rates_seen(model: Sequential) -> tuple[list[float], LambdaCallback]:
    """A LambdaCallback that records the optimizer's rate at the start of every epoch."""
    seen: list[float] = []
    return seen, LambdaCallback(on_epoch_begin=lambda epoch: seen.append(model.optimizer.rate(epoch - 1)))


def test_the_callbacks_are_exported_at_the_top_level() -> None:
    from xpnet import callbacks

    for name in ("EarlyStopping", "ModelCheckpoint", "CSVLogger", "LearningRateScheduler", "ReduceLROnPlateau",
                 "LambdaCallback"):
        assert getattr(xpnet, name) is getattr(callbacks, name) and name in xpnet.__all__


# ------------------------------------------------------------------------------------------------ ModelCheckpoint
def test_model_checkpoint_names_files_by_epoch_and_they_load_with_everything(tmp_path: Path) -> None:
    model = classifier()
    x, y = blobs()
    saver = ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.2f}.npz")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[saver])
    assert [p.name[:4] for p in saver.saved] == ["m-01", "m-02", "m-03"]
    assert sorted(tmp_path.iterdir()) == sorted(saver.saved)  # atomic: no temporary files left
    loaded = xpnet.load_model(saver.saved[-1])
    np.testing.assert_array_equal(loaded.get_parameters(), model.get_parameters())
    assert loaded.class_names == ["no", "yes"] and list(loaded.predict(x[:4])) == list(model.predict(x[:4]))


def test_model_checkpoint_save_best_only_saves_when_the_monitor_improves(tmp_path: Path) -> None:
    model = classifier()
    saver = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6, 0.7, 0.9], start=1):
        model.set_parameters(np.full(model.parameter_count, float(epoch)))
        saver(model, epoch, {"loss": 1.0, "val_accuracy": accuracy})
    assert len(saver.saved) == 3 and saver.best == 0.9
    assert xpnet.load_model(tmp_path / "best.npz").get_parameters()[0] == 5.0


def test_model_checkpoint_refuses_a_missing_monitor_or_a_bad_name(tmp_path: Path) -> None:
    model = classifier()
    with pytest.raises(ConfigError, match=r"ModelCheckpoint monitors 'val_loss'.*validation_split"):
        ModelCheckpoint(tmp_path / "m.npz", save_best_only=True)(model, 1, {"loss": 1.0})
    with pytest.raises(ConfigError, match=r"cannot be filled in .*\{epoch\} and \{loss\}"):
        ModelCheckpoint(tmp_path / "m-{val_loss}.npz")(model, 1, {"loss": 1.0})


# ------------------------------------------------------------------------------------------------------ CSVLogger
def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_logger_writes_one_row_per_epoch_with_the_history_figures(tmp_path: Path) -> None:
    model, (x, y) = classifier(), blobs()
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                        callbacks=[CSVLogger(tmp_path / "log.csv")])
    rows = read_rows(tmp_path / "log.csv")
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "time", "val_loss", "val_accuracy"]
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert [float(row["val_loss"]) for row in rows] == history.history["val_loss"]


def test_csv_logger_continues_a_resumed_run_without_repeating_its_epochs(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    model = classifier()
    logger = CSVLogger(path)
    for epoch in (1, 2, 3):
        logger(model, epoch, {"loss": 1.0 / epoch})
    resumed = CSVLogger(path, append=True)  # a run resumed from the checkpoint after epoch 1 redoes 2 and 3
    for epoch in (2, 3, 4):
        resumed(model, epoch, {"loss": 10.0 / epoch})
    assert [(row["epoch"], float(row["loss"])) for row in read_rows(path)] == [
        ("1", 1.0), ("2", 5.0), ("3", 10.0 / 3), ("4", 2.5)]
    CSVLogger(path)(classifier(), 1, {"loss": 7.0})  # not appending: a fresh file
    assert read_rows(path) == [{"epoch": "1", "loss": "7.0"}]


def test_csv_logger_refuses_a_file_of_other_columns_and_a_bad_separator(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("epoch,mse\n1,0.5\n")
    with pytest.raises(ConfigError, match=r"its columns \(epoch,mse\) are not this run's \(epoch,loss\)"):
        CSVLogger(path, append=True)(classifier(), 1, {"loss": 1.0})
    assert path.read_text() == "epoch,mse\n1,0.5\n"
    with pytest.raises(ConfigError, match="separator must be one character"):
        CSVLogger(path, separator=";;")


# ------------------------------------------------------------------------------------------ LearningRateScheduler
def test_learning_rate_scheduler_sets_each_epochs_rate_through_the_optimizer() -> None:
    model, (x, y) = classifier("sgd"), blobs()
    seen, recorder = rates_seen(model)
    scheduler = LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[scheduler, recorder])
    assert seen == [0.1, 0.05, 0.025] and model.optimizer.lr == 0.025
    assert model.config()["optimizer"]["lr"] == 0.025  # saved with the model, as a checkpoint keeps it


def test_learning_rate_scheduler_does_not_schedule_a_resumed_epoch_twice() -> None:
    model, (x, y) = classifier("sgd"), blobs()
    halve = LearningRateScheduler(lambda epoch, lr: lr / 2)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[halve])
    assert model.optimizer.lr == 0.025
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[halve], stop=None,
              history=model.trainer.history, position=model.position)
    assert model.optimizer.lr == 0.0125  # epoch 2 began afresh: halved once more
    position = model.position
    position.batch, position.seen = 2, 32  # as a run resumed mid-epoch from a checkpoint
    position.epoch -= 1
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[halve], history=model.trainer.history,
              position=position)
    assert model.optimizer.lr == 0.0125  # the resumed epoch kept the rate it began with


def test_learning_rate_scheduler_refuses_an_optimizer_schedule_and_bad_rates() -> None:
    x, y = blobs()
    model = classifier(xpnet.optimizers.Adam(lr=0.01, schedule=Cosine(3)))
    with pytest.raises(ConfigError, match=r"optimizer's own schedule \(adam \(lr 0.01, cosine"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: lr)])
    with pytest.raises(ConfigError, match=r"schedule gave -1.0 for epoch 0; it must return a positive number"):
        classifier().fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: -1.0)])
    with pytest.raises(ConfigError, match="needs a function"):
        LearningRateScheduler(0.1)


# ------------------------------------------------------------------------------------------------ ReduceLROnPlateau
def test_reduce_lr_on_plateau_cuts_the_base_rate_after_patience_then_cools_down() -> None:
    model = classifier(xpnet.optimizers.Adam(lr=0.01, schedule=Cosine(10)))
    reducer = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.002)
    rates = []
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], start=1):
        reducer(model, epoch, {"loss": loss})
        rates.append(model.optimizer.lr)
    # cut after 2 epochs without improvement, then 1 epoch of cooldown before the wait counts again
    assert rates == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.002, 0.002]  # never below min_lr
    assert model.optimizer.schedule == Cosine(10)  # the schedule keeps its shape, from the lower base rate


def test_reduce_lr_on_plateau_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="factor must be a number between 0 and 1"):
        ReduceLROnPlateau(factor=2)
    with pytest.raises(ConfigError, match="patience must be a non-negative integer"):
        ReduceLROnPlateau(patience=-1)
    with pytest.raises(ConfigError, match="unknown mode 'up'"):
        ReduceLROnPlateau(mode="up")


# --------------------------------------------------------------------------------------------------- LambdaCallback
def test_lambda_callback_calls_plain_functions_before_and_after_each_epoch() -> None:
    model, (x, y) = classifier(), blobs()
    events = []
    callback = LambdaCallback(on_epoch_begin=lambda epoch: events.append(("begin", epoch)),
                              on_epoch_end=lambda epoch, logs: events.append(("end", epoch, sorted(logs))))
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    assert events == [("begin", 1), ("end", 1, ["accuracy", "loss", "time"]),
                      ("begin", 2), ("end", 2, ["accuracy", "loss", "time"])]
    with pytest.raises(ConfigError, match="on_epoch_end must be a function"):
        LambdaCallback(on_epoch_end=3)
