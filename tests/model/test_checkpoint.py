"""Checkpoints: a resumed run ends exactly where an uninterrupted one does; bad files are skipped."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import BatchNorm, ConfigError, Dense, Dropout, Flatten, ModelFileError, RandomShift, Reshape, Sequential
from xpnet.builders import mlp
from xpnet.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from xpnet.serialization import save_model
from xpnet.trainer import History, TrainingPosition

SETTINGS = {"task": "test", "epochs": 4, "batch_size": 16, "seed": 5}


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((100, 6)), rng.integers(0, 3, 100)


def _model(kind="mlp"):
    """A plain MLP, one with BatchNorm (state saved beside the parameters) and Dropout (masks keyed by step), or one
    with RandomShift (shifts keyed by step) on 2x2x3 images between two Dense layers."""
    options = {"seed": 1, "device": "cpu", "dtype": "float64", "optimizer": "adam", "lr": 0.01}
    if kind == "mlp":
        return mlp([6, 7, 3], "tanh", **options)
    if kind == "random_shift":
        return Sequential([Dense(12, "tanh", input_dim=6), Reshape((2, 2, 3)), RandomShift(1), Flatten(),
                           Dense(3, "softmax")], **options)
    return Sequential([Dense(7, "tanh", input_dim=6), BatchNorm(0.9), Dropout(0.3), Dense(3, "softmax")], **options)


def _uninterrupted(kind):
    x, y = _data()
    model = _model(kind)
    history = model.fit(x, y, epochs=4, batch_size=16, seed=5, verbose=0)
    return model.get_parameters(), model.get_state(), history


KINDS = pytest.mark.parametrize("kind", ["mlp", "dropout_batchnorm", "random_shift"])


@KINDS
def test_resume_after_an_epoch_is_exact(tmp_path, kind):
    expected, expected_state, expected_history = _uninterrupted(kind)
    x, y = _data()
    model = _model(kind)
    history = History()

    def checkpoint_then_stop(m, epoch, logs):
        save_checkpoint(tmp_path, m, history, SETTINGS)
        if epoch == 2:
            m.stop_training = True

    model.fit(x, y, epochs=4, batch_size=16, seed=5, verbose=0, callbacks=[checkpoint_then_stop], history=history)
    resumed = latest_checkpoint(tmp_path, device="cpu")
    assert resumed.position.epoch == 2 and resumed.history.epoch == [1, 2]
    final = resumed.model.fit(x, y, epochs=4, batch_size=16, verbose=0, history=resumed.history,
                              position=resumed.position)
    np.testing.assert_array_equal(resumed.model.get_parameters(), expected)
    np.testing.assert_array_equal(resumed.model.get_state(), expected_state)
    assert final.history["loss"] == expected_history.history["loss"]
    assert resumed.model.step == 4 * 7


@KINDS
def test_resume_in_the_middle_of_an_epoch_is_exact(tmp_path, monkeypatch, kind):
    expected, expected_state, expected_history = _uninterrupted(kind)
    x, y = _data()
    model = _model(kind)
    original_step = type(model).train_step

    def step_then_maybe_stop(self, *args, **kwargs):
        original_step(self, *args, **kwargs)
        if self.step == 10:  # epoch 2, batch 3 of 7: as if Ctrl-C arrived here
            self.stop_training = True

    monkeypatch.setattr(type(model), "train_step", step_then_maybe_stop)
    # eager steps, so that train_step runs (a replayed step does not call it); the rest replays where it can
    history = model.fit(x, y, epochs=4, batch_size=16, seed=5, verbose=0, graph="off")
    monkeypatch.undo()
    assert (model.position.epoch, model.position.batch) == (1, 3)
    path = save_checkpoint(tmp_path, model, history, SETTINGS)
    resumed = load_checkpoint(path, device="cpu")
    final = resumed.model.fit(x, y, epochs=4, batch_size=16, verbose=0, history=resumed.history,
                              position=resumed.position)
    np.testing.assert_array_equal(resumed.model.get_parameters(), expected)
    np.testing.assert_array_equal(resumed.model.get_state(), expected_state)
    np.testing.assert_allclose(final.history["loss"], expected_history.history["loss"], rtol=1e-12)


def test_only_the_newest_checkpoints_are_kept_and_a_corrupt_newest_is_skipped(tmp_path):
    x, y = _data()
    model = _model()
    history = History()
    model.fit(x, y, epochs=3, batch_size=16, seed=5, verbose=0, history=history,
              callbacks=[lambda m, e, logs: save_checkpoint(tmp_path, m, history, SETTINGS, keep=2)])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["checkpoint-e00002-b0000000.npz", "checkpoint-e00003-b0000000.npz"]
    newest = tmp_path / files[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="skipping an unreadable checkpoint"):
        found = latest_checkpoint(tmp_path, device="cpu")
    assert found.position.epoch == 2
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_a_saved_model_is_not_a_checkpoint(tmp_path):
    path = save_model(_model(), tmp_path / "model.npz")
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        load_checkpoint(path)


def test_a_position_that_does_not_fit_the_run_is_refused():
    x, y = _data()
    model = _model()
    with pytest.raises(ConfigError, match="cannot resume at batch 9 of an epoch of 7 batches"):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, position=TrainingPosition(epoch=0, batch=9, seen=144))
