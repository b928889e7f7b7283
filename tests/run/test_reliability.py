"""Reliability: SIGKILL at any moment, the NaN guard, fuzzed image, checkpoint and metadata loaders, and
checkpoints resumed on another device."""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import xpnet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from process_helpers import thread_states

from xpnet.archive import CHECKPOINT_NAME as NAME
from xpnet.backend import get_backend
from xpnet.builders import mlp
from xpnet.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from xpnet.data.digits import mnist_like, read_grayscale
from xpnet.errors import DataError, ModelFileError, TrainingError
from xpnet.features import HueHistogramFeatures
from xpnet.layers import Dense
from xpnet.model import Model
from xpnet.run import run_training
from xpnet.serialization import load_model, read_archive, write_archive
from xpnet.tasks import TaskData
from xpnet.tasks import fruits as fruit_task
from xpnet.trainer import History

KILLS = 40
"""SIGKILLs sent in the kill chain: half at random moments, half in the middle of checkpoint writes."""
STOP_BYTES = 6_000_000
"""Mid-write kills land before this byte of a checkpoint (``kill_target.py``'s are 6.8 MB)."""

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STRUCTURE_FUZZ = settings(FUZZ, max_examples=300)
KILL_TARGET = Path(__file__).with_name("kill_target.py")


# --- 1. SIGKILL at random moments, including mid-write ----------------------------------------------------
class KillServer:
    """``kill_target.py`` in a subprocess, with its output lines in a queue read by a thread."""

    def __init__(self) -> None:
        env = {**os.environ, "XPNET_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, str(KILL_TARGET)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.next_line(120) == "ready"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout: float) -> str | None:
        """The next output line, or None when none came within ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def line_of(self, pid: int, timeout: float, waiting_for: str) -> str:
        """The next output line while training child ``pid`` runs. If none comes within ``timeout`` seconds the child
        is stuck: its threads' wait channels and Python stacks (its faulthandler writes them to stderr on SIGUSR1)
        are reported, and it is killed so that the server takes the next command; then the test fails."""
        line = self.next_line(timeout)
        if line is not None:
            return line
        stood = thread_states(pid)
        with contextlib.suppress(ProcessLookupError):  # reaped already: the "exited" line is late, not missing
            os.kill(pid, signal.SIGUSR1)
            time.sleep(1)
            os.kill(pid, signal.SIGKILL)
        while (line := self.next_line(60)) is not None and not line.startswith("exited"):
            pass
        pytest.fail(f"training child {pid} wrote nothing for {timeout} s while the test waited for {waiting_for}; "
                    f"its threads: {stood} (their Python stacks are on stderr)")

    def train(self, directory: Path, epochs: int, resume: bool, stop: tuple[int, int] | None = None) -> int:
        """Fork a training child (stopping itself in its ``stop[0]``-th checkpoint write once ``stop[1]`` bytes are
        written, when given); return its pid."""
        stopping = "" if stop is None else f" {stop[0]} {stop[1]}"
        self.process.stdin.write(f"train {directory} {epochs} {'resume' if resume else 'fresh'}{stopping}\n")
        self.process.stdin.flush()
        line = self.next_line(60)
        assert line is not None and line.startswith("started "), line
        return int(line.split()[1])

    def close(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.reader.join(timeout=60)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def kill_server() -> Iterator[KillServer]:
    server = KillServer()
    yield server
    server.close()


def _checkpointed(line: str) -> int | None:
    """The epoch of an ``epoch E checkpointed`` line."""
    parts = line.split()
    return int(parts[1]) if len(parts) == 3 and parts[2] == "checkpointed" else None


def _run_to_end(server: KillServer, directory: Path, epochs: int, resume: bool) -> None:
    pid = server.train(directory, epochs, resume)
    lines = []
    while not lines or not lines[-1].startswith("exited"):
        lines.append(server.line_of(pid, 120, f"the line after {lines[-3:]}"))
    assert lines[-2:] == [f"done {epochs}", "exited 0"], lines


def _check_after_kill(directory: Path, reported: int, before: int) -> tuple[int, int, int]:
    """Every checkpoint left loads, the newest is at least ``reported``, and there are no more than the run could
    leave: a write prunes to the newest 2 only after the new file is complete, so a run killed before its first
    pruning leaves one file more than the ``before`` it started with, and any other run at most 2 + 1. Return
    (newest epoch, temporary files, checkpoint files)."""
    files = sorted(directory.glob("checkpoint-*.npz"))
    assert all(NAME.match(path.name) for path in files), files
    assert len(files) <= max(before, 2) + 1, (before, files)
    for path in files:
        load_checkpoint(path, device="cpu")
    temps = list(directory.glob(".checkpoint-*.tmp"))
    assert len(temps) <= 1, f"stale temporary files accumulate: {temps}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # latest_checkpoint must not need to skip anything either
        latest = latest_checkpoint(directory, device="cpu")
    if latest is None:
        assert reported == 0 and not files
        return 0, len(temps), 0
    assert latest.position.epoch >= reported and latest.position.batch == 0
    assert latest.history.epoch == list(range(1, latest.position.epoch + 1))
    return latest.position.epoch, len(temps), len(files)


def test_sigkill_at_random_moments_never_loses_more_than_the_current_epoch(kill_server, tmp_path):
    rng = random.Random(20240611)
    directory = tmp_path / "chain"
    reported = newest = kills = torn = files = 0
    for i in range(KILLS):
        if i % 2:  # in the middle of a checkpoint write: its k-th, at a random byte, where the child stops itself
            stop = (rng.randint(1, 3), rng.randrange(STOP_BYTES))
            pid = kill_server.train(directory, 100_000, resume=newest > 0, stop=stop)
            while (line := kill_server.line_of(pid, 60, f"a stop in checkpoint write {stop}")) != "stopped":
                assert not line.startswith("exited"), line
                reported = max(reported, _checkpointed(line) or 0)
        else:  # at a random moment, from just after the fork to a few epochs in
            pid = kill_server.train(directory, 100_000, resume=newest > 0)
            deadline = time.monotonic() + rng.uniform(0, 0.5)
            while (line := kill_server.next_line(deadline - time.monotonic())) is not None:
                assert not line.startswith("exited"), line
                reported = max(reported, _checkpointed(line) or 0)
        os.kill(pid, signal.SIGKILL)
        kills += 1
        while not (line := kill_server.line_of(pid, 60, "its exit after SIGKILL")).startswith("exited"):
            reported = max(reported, _checkpointed(line) or 0)
        assert line == f"exited {-signal.SIGKILL}", line
        newest, temps, files = _check_after_kill(directory, reported, files)
        torn += temps
    print(f"\nSIGKILL chain: {kills} kills, {torn} of them left a half-written checkpoint, "
          f"reached epoch {newest}")
    assert kills == KILLS and torn >= KILLS // 2 and newest >= KILLS // 4
    final = newest + 2
    _run_to_end(kill_server, directory, final, resume=True)
    assert not list(directory.glob(".checkpoint-*.tmp")) and len(list(directory.glob("checkpoint-*.npz"))) == 2
    _run_to_end(kill_server, tmp_path / "straight", final, resume=False)
    killed = latest_checkpoint(directory, device="cpu")
    straight = latest_checkpoint(tmp_path / "straight", device="cpu")
    assert killed.position.epoch == straight.position.epoch == final
    np.testing.assert_array_equal(killed.model.get_parameters(), straight.model.get_parameters())
    assert killed.history.history["loss"] == straight.history.history["loss"]


def test_stale_temporary_files_are_removed_by_the_next_checkpoint(tmp_path):
    model = mlp([3, 2], "relu", "softmax", device="cpu", seed=0)
    stale = [tmp_path / ".checkpoint-e00004-b0000000.npz.abc123.tmp",
             tmp_path / ".checkpoint-e00001-b0000000.npz.x.tmp"]
    other = tmp_path / ".notes.txt.tmp"
    for path in [*stale, other]:
        path.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path, model, History(), {"task": "t"})
    assert not any(path.exists() for path in stale) and other.exists()


# --- 2. the NaN guard --------------------------------------------------------------------------------------
def test_cli_divergence_is_a_clean_error_naming_the_step(shared_data, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    result = xpnet("train", "mnist", "--data-dir", shared_data, "--lr", "1e30", "--optimizer", "sgd",
                   "--hidden", "16", "--epochs", "2", "--checkpoint-dir", checkpoints, "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("xpnet: error:")]
    assert len(errors) == 1, result.stderr
    assert "epoch 1, step" in errors[0] and "lower the learning rate" in errors[0] and "--lr 1e+29" in errors[0]
    assert "checkpoint is kept" not in errors[0]  # it diverged before the first checkpoint: none to keep
    assert latest_checkpoint(checkpoints) is None


def _diverging_task() -> TaskData:
    """y = 0 from x = 1: with SGD at lr 1.5 and batch 1 the weight doubles (and flips sign) every step, so the
    squared loss passes float64's range near step 510, well into epoch 2 of 400 steps."""
    ones = np.ones((400, 1))
    return TaskData(ones, np.zeros(400), ones[:4], np.zeros(4), ["y"], {"type": "custom"})


def _diverging_model() -> Model:
    layer = Dense(1, "identity", input_dim=1, bias=False, init="glorot_uniform")
    return Model([layer], "mse", "sgd", lr=1.5, device="cpu", dtype="float64", seed=0)


def test_divergence_in_epoch_two_keeps_the_last_good_checkpoint(tmp_path):
    settings_ = {"task": "diverge", "epochs": 5, "batch_size": 1, "seed": 0}
    with pytest.raises(TrainingError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warnings on the way to inf
        run_training(_diverging_task(), _diverging_model, settings_, checkpoint_dir=str(tmp_path), verbose=0,
                     log=lambda message: None)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "epoch 2, step" in message and "lower the learning rate" in message and info.value.hint == "try --lr 0.15"
    assert "last good checkpoint is kept" in message and str(tmp_path) in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-e00001-b0000000.npz"]
    kept = latest_checkpoint(tmp_path, device="cpu")
    assert kept.position.epoch == 1 and np.isfinite(kept.model.get_parameters()).all()


# --- 3. fuzzed loaders -------------------------------------------------------------------------------------
def _mutate(data: st.DataObject, original: bytes) -> bytes:
    """``original`` with bytes flipped, cut short, spliced with random bytes, or replaced by random bytes."""
    mode = data.draw(st.sampled_from(["flip", "truncate", "splice", "random"]))
    blob = bytearray(original)
    if mode == "flip":
        for _ in range(data.draw(st.integers(1, 20))):
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    elif mode == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    elif mode == "splice":
        at = data.draw(st.integers(0, len(blob)))
        blob[at : at + data.draw(st.integers(0, 64))] = data.draw(st.binary(max_size=64))
    else:
        blob = bytearray(data.draw(st.binary(max_size=2000)))
    return bytes(blob)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def image_files() -> dict[str, bytes]:
    """Small valid images in several formats and modes: a dark digit on white, and a coloured photo."""
    digit = Image.new("L", (18, 24), 255)
    digit.paste(0, (6, 4, 12, 20))
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    return {
        "digit.png": _encoded(digit, "PNG"), "digit.gif": _encoded(digit, "GIF"),
        "photo.jpg": _encoded(photo, "JPEG"), "photo.bmp": _encoded(photo, "BMP"),
        "photo.png": _encoded(photo.convert("P"), "PNG"), "photo.tif": _encoded(photo, "TIFF"),
    }


def _huge_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` pixels, with almost no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def test_images_claiming_huge_sizes_are_data_errors(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_huge_png(20_000, 20_000))  # beyond Pillow's decompression-bomb limit
    with pytest.raises(DataError, match="huge.png"):
        mnist_like(read_grayscale(path), path)
    with pytest.raises(DataError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fruit_task.image_features(_fruit_preprocessing(), [path], get_backend("cpu"))


@FUZZ
@given(data=st.data())
def test_fuzzed_digit_images_only_raise_data_errors(image_files, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(image_files)))
    path = tmp_path / name
    path.write_bytes(_mutate(data, image_files[name]))
    try:
        pixels = mnist_like(read_grayscale(path), path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert pixels.shape == (784,) and pixels.dtype == np.uint8


def _fruit_preprocessing() -> dict[str, Any]:
    hist = np.random.default_rng(0).random((8, 32))
    return {"type": "hue_histogram", "bins": 32, "size": [16, 16],
            "selector": HueHistogramFeatures(min_std=0.0).fit(hist).to_dict()}


@FUZZ
@given(data=st.data())
def test_fuzzed_fruit_images_only_raise_data_errors(image_files, tmp_path, data):
    names = data.draw(st.lists(st.sampled_from(sorted(image_files)), min_size=1, max_size=3))
    paths = []
    for i, name in enumerate(names):
        paths.append(tmp_path / f"{i}-{name}")
        original = image_files[name]
        paths[-1].write_bytes(_mutate(data, original) if data.draw(st.booleans()) else original)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "skipping unreadable image ..." is allowed
        try:
            features = fruit_task.image_features(_fruit_preprocessing(), paths, get_backend("cpu"))
        except DataError:
            return
    assert features.shape == (len(paths), 32) and np.isfinite(features).all()


CHECKPOINT_SETTINGS = {"task": "fuzz", "epochs": 2, "batch_size": 8, "seed": 0}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[bytes, bytes]:
    """The bytes of a small model's checkpoints after epochs 1 and 2."""
    folder = tmp_path_factory.mktemp("checkpoints")
    model = mlp([4, 5, 3], "tanh", seed=0, device="cpu", dtype="float64")
    history = History()
    rng = np.random.default_rng(0)

    def checkpoint(trained: Model, epoch: int, logs: dict[str, float]) -> None:
        save_checkpoint(folder, trained, history, CHECKPOINT_SETTINGS)

    model.fit(rng.standard_normal((24, 4)), rng.integers(0, 3, 24), epochs=2, batch_size=8, verbose=0,
              history=history, callbacks=[checkpoint])
    return tuple(path.read_bytes() for path in sorted(folder.glob("checkpoint-*.npz")))


@FUZZ
@given(data=st.data())
def test_fuzzed_checkpoints_are_refused_or_skipped(checkpoints, tmp_path, data):
    older, newer = checkpoints
    (tmp_path / "checkpoint-e00001-b0000000.npz").write_bytes(older)
    broken = tmp_path / "checkpoint-e00002-b0000000.npz"
    broken.write_bytes(_mutate(data, newer))
    try:
        loaded = load_checkpoint(broken, device="cpu")
    except ModelFileError as exc:
        assert str(broken) in str(exc)
        loaded = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        latest = latest_checkpoint(tmp_path, device="cpu")
    if loaded is None:
        assert latest.position.epoch == 1 and "skipping an unreadable checkpoint" in str(caught[0].message)
    else:
        assert latest.position.epoch == loaded.position.epoch and not caught


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**13), 10**13) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value (floats include nan and inf, which Python's json writes and reads back)."""


@pytest.fixture(scope="module")
def saved_checkpoint(checkpoints, tmp_path_factory) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("saved") / "checkpoint.npz"
    path.write_bytes(checkpoints[1])
    return read_archive(path)


def _replace(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """``value`` with one entry somewhere inside replaced by arbitrary JSON, or removed."""
    if isinstance(value, (dict, list)) and value and (depth == 0 or data.draw(st.booleans())):
        keys = sorted(value) if isinstance(value, dict) else list(range(len(value)))
        key = data.draw(st.sampled_from(keys))
        copy = dict(value) if isinstance(value, dict) else list(value)
        if isinstance(copy, dict) and data.draw(st.integers(0, 5)) == 0:
            del copy[key]
        else:
            copy[key] = _replace(data, value[key], depth + 1)
        return copy
    return data.draw(JSON)


@STRUCTURE_FUZZ
@given(data=st.data())
def test_valid_json_of_the_wrong_structure_is_refused(saved_checkpoint, tmp_path, data):
    metadata, arrays = saved_checkpoint
    training = metadata["training"]
    changed = {**metadata, "model": _replace(data, metadata["model"]),
               "training": _replace(data, training) if data.draw(st.booleans()) else training}
    path = tmp_path / "checkpoint-e00002-b0000000.npz"
    write_archive(path, arrays, json.loads(json.dumps(changed)))
    try:
        found = load_checkpoint(path, device="cpu")
    except ModelFileError as exc:
        assert str(path) in str(exc)
        return
    x = np.random.default_rng(1).standard_normal((6, found.model.input_dim))  # what loads must also work
    assert found.model.predict_proba(x).shape == (6, found.model.output_dim)
    position = found.position
    assert all(isinstance(n, int) and n >= 0 for n in (position.epoch, position.batch, position.seen))
    assert np.isfinite([position.loss_sum, position.correct]).all()


@pytest.mark.parametrize("dims", [(10**6, 10**6), (10**12, 1), (2**40, 2**40)])
def test_metadata_claiming_huge_layers_is_refused_before_allocating(saved_checkpoint, tmp_path, monkeypatch,
                                                                    dims):
    metadata, arrays = saved_checkpoint
    layer = {"type": "dense", "units": dims[1], "input_shape": [dims[0]], "activation": "softmax"}
    path = tmp_path / "huge.npz"
    model = {**metadata["model"], "layers": [layer], "input_shape": [dims[0]]}
    write_archive(path, arrays, {**metadata, "model": model})

    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a Model was built before the parameter count was checked")

    monkeypatch.setattr("xpnet.serialization.Model", no_model)
    with pytest.raises(ModelFileError, match="needs parameters of shape"):
        load_model(path, device="cpu")


# --- 4. checkpoints move between devices -------------------------------------------------------------------
def _device_run(tmp_path: Path, first: str, second: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Parameters after 4 epochs straight on ``first``, and after 2 on ``first`` + 2 resumed on ``second``."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((120, 8)), rng.integers(0, 3, 120)

    def model() -> Model:
        return mlp([8, 16, 3], "tanh", seed=2, device=first, dtype=dtype, optimizer="adam", lr=0.01)

    straight = model()
    straight.fit(x, y, epochs=4, batch_size=16, seed=4, verbose=0)
    history = History()
    saved = model()
    saved.fit(x, y, epochs=2, batch_size=16, seed=4, verbose=0, history=history)
    run = {"task": "device", "epochs": 4, "batch_size": 16, "seed": 4}
    path = save_checkpoint(tmp_path, saved, history, run)
    resumed = load_checkpoint(path, device=second)
    assert resumed.model.backend.name == second and resumed.model.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(resumed.model.get_parameters(), saved.get_parameters())  # the move is exact
    resumed.model.fit(x, y, epochs=4, batch_size=16, verbose=0, history=resumed.history,
                      position=resumed.position)
    return straight.get_parameters(), resumed.model.get_parameters()


def test_float32_checkpoint_resumes_on_the_cpu(tmp_path):
    straight, resumed = _device_run(tmp_path, "cpu", "cpu", "float32")
    # stated tolerance: float32 rounding; with the same device and kernels it is in practice exact
    np.testing.assert_allclose(resumed, straight, rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.parametrize(("first", "second"), [("cpu", "gpu"), ("gpu", "cpu")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_checkpoint_resumes_on_the_other_device(tmp_path, first, second, dtype):
    straight, resumed = _device_run(tmp_path, first, second, dtype)
    # two epochs on another device's BLAS and kernels: rounding differs, so agreement within float tolerance
    tolerance = {"float32": 2e-3, "float64": 1e-9}[dtype]
    np.testing.assert_allclose(resumed, straight, rtol=tolerance, atol=tolerance)
