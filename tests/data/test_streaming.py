"""Training on data read a chunk at a time: every sample once per epoch, shuffled and seeded, resumable exactly,
with a bounded number of rows loaded, and the same features as when the data stays resident."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import numpy as np
import pytest

from xpnet.builders import mlp
from xpnet.checkpoint import load_checkpoint, save_checkpoint
from xpnet.data.chunks import ChunkReader, chunk_bounds
from xpnet.data.mnist import load_mnist, write_mnist_csv
from xpnet.tasks import csv as csv_task
from xpnet.tasks import images as images_task
from xpnet.tasks import validation_split

SETTINGS = {"task": "test", "epochs": 3, "batch_size": 16, "seed": 5}


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((150, 6)), rng.integers(0, 3, 150)


class Recorder:
    """ChunkReader over arrays in chunks of 40 rows, noting which chunks were read and the most rows at once."""

    def __init__(self, x: np.ndarray, y: np.ndarray, rows: int = 40) -> None:
        self.bounds, self.reads = chunk_bounds(len(x), rows), []
        self.data = ChunkReader([hi - lo for lo, hi in self.bounds], x.shape[1], self.read)
        self.x, self.y = x, y

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads.append(index)
        lo, hi = self.bounds[index]
        return self.x[lo:hi], self.y[lo:hi]


def _model():
    return mlp([6, 7, 3], "tanh", seed=1, device="cpu", dtype="float64", optimizer="adam", lr=0.01)


def _streamed(epochs: int = 3) -> tuple[np.ndarray, Recorder, object]:
    recorder = Recorder(*_arrays())
    model = _model()
    history = model.fit(recorder.data, None, epochs=epochs, batch_size=16, seed=5, verbose=0)
    return model.get_parameters(), recorder, history


def test_every_chunk_once_per_epoch_in_a_shuffled_seeded_order() -> None:
    params, recorder, history = _streamed()
    epochs = [recorder.reads[k : k + 4] for k in range(0, 12, 4)]
    assert len(recorder.reads) == 12 and all(sorted(order) == [0, 1, 2, 3] for order in epochs)
    assert len({tuple(order) for order in epochs}) > 1  # the chunk order changes between epochs
    again, recorder_again, _ = _streamed()
    np.testing.assert_array_equal(params, again)
    assert recorder_again.reads == recorder.reads
    model = _model()
    model.fit(Recorder(*_arrays()).data, None, epochs=3, batch_size=16, seed=6, verbose=0)
    assert not np.array_equal(model.get_parameters(), params)
    assert len(history.history["loss"]) == 3 and history.history["loss"][-1] < history.history["loss"][0]


def test_rows_within_a_chunk_are_shuffled_and_each_trained_on_once(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _arrays()
    x[:, 0] = np.arange(len(x))  # the row number rides along in the first feature
    model = _model()
    seen = []
    original = type(model).train_step

    def record(self, xb, yb, *args, **kwargs):
        seen.extend(np.asarray(xb)[:, 0].astype(int).tolist())
        original(self, xb, yb, *args, **kwargs)

    monkeypatch.setattr(type(model), "train_step", record)
    model.fit(Recorder(x, y).data, None, epochs=1, batch_size=16, seed=5, verbose=0)
    assert sorted(seen) == list(range(150))
    first_chunk = seen[:16]
    assert first_chunk != sorted(first_chunk)
    assert len({row // 40 for row in first_chunk}) == 1  # a batch comes from one chunk


def test_resume_in_the_middle_of_a_streamed_epoch_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected, _, expected_history = _streamed()
    model = _model()
    original = type(model).train_step

    def step_then_maybe_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.step == 14:  # epoch 2, batch 3 of 11 (chunks of 3, 3, 3 and 2 batches)
            self.stop_training = True

    monkeypatch.setattr(type(model), "train_step", step_then_maybe_stop)
    recorder = Recorder(*_arrays())
    history = model.fit(recorder.data, None, epochs=3, batch_size=16, seed=5, verbose=0)
    monkeypatch.undo()
    assert (model.position.epoch, model.position.batch) == (1, 3)
    resumed = load_checkpoint(save_checkpoint(tmp_path, model, history, SETTINGS), device="cpu")
    recorder.reads.clear()
    final = resumed.model.fit(recorder.data, None, epochs=3, batch_size=16, verbose=0, history=resumed.history,
                              position=resumed.position)
    np.testing.assert_array_equal(resumed.model.get_parameters(), expected)
    np.testing.assert_allclose(final.history["loss"], expected_history.history["loss"], rtol=1e-12)
    assert len(recorder.reads) == 3 + 4  # the chunk already done in epoch 2 is not read again


def test_streamed_validation_and_evaluation_match_resident() -> None:
    x, y = _arrays()
    model = _model()
    history = model.fit(x[:100], y[:100], epochs=2, batch_size=16, seed=5, verbose=0,
                        validation_data=Recorder(x[100:], y[100:], rows=15).data)
    resident = model.evaluate(x[100:], y[100:])
    streamed = model.evaluate(Recorder(x[100:], y[100:], rows=15).data, None)
    assert streamed["accuracy"] == pytest.approx(resident["accuracy"])
    assert streamed["loss"] == pytest.approx(resident["loss"], rel=1e-12)
    assert history.history["val_loss"][-1] == pytest.approx(resident["loss"], rel=1e-12)


@pytest.fixture(scope="module")
def mnist_csv(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 real MNIST test digits as a CSV file, label first, no header."""
    data = load_mnist(shared_data)
    return write_mnist_csv(tmp_path_factory.mktemp("mnist") / "digits.csv", data.x_test[:1000], data.y_test[:1000])


def test_csv_larger_than_the_bound_streams_the_same_rows(mnist_csv: Path) -> None:
    resident = csv_task.load_task(mnist_csv, "0", header=False)
    streamed = csv_task.load_task(mnist_csv, "0", header=False, max_in_memory=150)
    assert isinstance(resident.x_train, np.ndarray) and streamed.y_train is None
    chunks = list(streamed.x_train)
    assert max(len(labels) for _, labels in chunks) <= 150 and len(streamed.x_train) == len(resident.y_train)
    np.testing.assert_allclose(np.concatenate([x for x, _ in chunks]), resident.x_train, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in chunks]), resident.y_train)
    np.testing.assert_allclose(streamed.preprocessing["scaling"]["std"], resident.preprocessing["scaling"]["std"])
    assert len(streamed.x_test) == len(resident.y_test) == 1000 - len(resident.y_train) and streamed.features == 784


def test_mnist_csv_trains_in_chunks_of_a_tiny_bound(mnist_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = csv_task.load_task(mnist_csv, "0", header=False, max_in_memory=100)
    loaded = []
    original = ChunkReader.chunk

    def chunk(self, index):
        x, y = original(self, index)
        loaded.append(len(y))
        return x, y

    monkeypatch.setattr(ChunkReader, "chunk", chunk)
    model = mlp([784, 64, 10], "relu", optimizer="adam", lr=1e-3, device="cpu", seed=0)
    model.fit(task.x_train, None, epochs=3, batch_size=32, seed=0, verbose=0, validation_data=(task.x_test, None))
    assert max(loaded) <= 100 and len(loaded) >= 3 * 8
    assert model.evaluate(task.x_test, None)["accuracy"] > 0.75


def test_image_folder_larger_than_the_bound_streams_the_same_images(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "fruits-360" / "Training"
    classes = ["Mango", "Raspberry"]
    resident = images_task.load_task(folder, None, size=(12, 10), classes=classes)
    streamed = images_task.load_task(folder, None, size=(12, 10), classes=classes, max_in_memory=40)
    chunks = list(streamed.x_train)
    assert max(len(labels) for _, labels in chunks) <= 40
    np.testing.assert_allclose(np.concatenate([x for x, _ in chunks]), resident.x_train, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in chunks]), resident.y_train)
    assert streamed.image_shape == resident.image_shape == (12, 10, 3)


def test_streamed_rows_are_parsed_once_into_a_spill_removed_with_the_data(mnist_csv: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.csv"
    copy.write_bytes(mnist_csv.read_bytes())
    before = set(Path(tempfile.gettempdir()).glob("xpnet-chunks-*"))
    task = csv_task.load_task(copy, "0", header=False, max_in_memory=300)
    copy.unlink()  # the epochs read the spill, not the file
    first = [labels for _, labels in task.x_train]
    assert sum(len(labels) for labels in first) == len(task.x_train)
    spills = set(Path(tempfile.gettempdir()).glob("xpnet-chunks-*")) - before
    assert spills and all(any(folder.iterdir()) for folder in spills)
    del task, first
    gc.collect()
    assert not any(folder.exists() for folder in spills)


def test_streamed_training_data_keeps_every_row_for_training(mnist_csv: Path) -> None:
    task = csv_task.load_task(mnist_csv, "0", header=False, max_in_memory=150)
    x, y, validation = validation_split(task, 0.1, 0)
    assert x is task.x_train and y is None and validation is None
    resident = csv_task.load_task(mnist_csv, "0", header=False)
    _, _, (held_x, held_y) = validation_split(resident, 0.1, 0)
    assert len(held_y) == round(0.1 * len(resident.y_train))
