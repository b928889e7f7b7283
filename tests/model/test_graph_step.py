"""The graph step (``xpnet.graph_step``): its device-memory inputs, the driver's capture -> check -> fallback
logic with a stand-in runtime, the options, the CPU's kernel replay (``xpnet.kernel_replay``), and (``gpu``-marked)
real CUDA capture on a device."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.numba_cuda import ViewCache
from xpnet.kernels.sets import ReferenceKernels

from xpnet import get_backend, graph_step
from xpnet.backend_numpy import NumpyBackend
from xpnet.errors import ConfigError
from xpnet.kernel_replay import KernelReplay
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
    Reshape,
)
from xpnet.model import Model
from xpnet.optimizers import SGD, Adam, Momentum
from xpnet.schedules import Cosine


# --------------------------------------------------------------------- device-array rate and step (hyper kernels)
@pytest.mark.parametrize("kernels", [ReferenceKernels, CudaKernels], ids=["reference", "cuda"])
@pytest.mark.parametrize("optimizer", [SGD(0.1), Momentum(0.05), Adam(0.01, schedule=Cosine(4))], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_from_device_equals_update(kernels: type, optimizer: Any, dtype: Any) -> None:
    """The update reading ``[lr, step]`` from device memory equals the one given them as host scalars."""
    rng = np.random.default_rng(5)
    size, step, progress = 37, 3, 1.5
    start = [rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype),
             rng.standard_normal((2, size)).astype(dtype)]
    start[2][1] = np.abs(start[2][1])  # Adam's second moment
    scalar = [a.copy() for a in start]
    optimizer.update(kernels(), *scalar, step, progress)
    device = [a.copy() for a in start]
    hyper = np.array(optimizer.hyper_values(step, progress))
    optimizer.update_from_device(kernels(), *device, hyper)
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    for want, got in zip(scalar, device, strict=True):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    assert not np.array_equal(scalar[0], start[0])


# ------------------------------------------------------------------------------------------ the view cache
class FakeArray:
    """What ``ViewCache`` reads of a CuPy array: its data pointer and layout."""

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: Any = np.float32) -> None:
        self.data = type("Memory", (), {"ptr": ptr})()
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.strides = tuple(int(s) for s in np.empty(shape, dtype).strides)


def test_view_cache_reuses_views_and_tells_arrays_apart() -> None:
    made: list[Any] = []

    def wrap(x: Any) -> object:
        made.append(x)
        return object()

    cache = ViewCache(wrap, size=2)
    a, b = FakeArray(1000, (4, 3)), FakeArray(2000, (4, 3))
    view = cache.view(a)
    assert cache.view(a) is view and cache.view(FakeArray(1000, (4, 3))) is view  # same memory, same layout
    assert len(made) == 1
    assert cache.view(b) is not view
    assert cache.view(FakeArray(1000, (3, 4))) is not view  # same memory seen another way
    assert cache.view(FakeArray(1000, (4, 3), np.float64)) is not view
    assert len(made) == 4 and len(cache.views) == 2  # the least recently used views were dropped
    assert cache.view(a) is not view  # ... so a is wrapped again
    assert len(made) == 5


# ------------------------------------------------------------------------ the driver, with a stand-in for CUDA
class NoGraphs(NumpyBackend):
    """A CPU backend without a graph runtime."""

    graph_runtime = None


class Replay:
    """``GraphRuntime`` stand-in: a captured step is the Python function, replayed by calling it."""

    def __init__(self) -> None:
        self.captured: list[Callable[[], None]] = []
        self.launches = 0
        self.runs = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.runs += 1
        yield

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        self.captured.append(step)
        return step

    def launch(self, graph: Callable[[], None]) -> None:
        self.launches += 1
        graph()


class FailingCapture(Replay):
    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        raise RuntimeError("operation not permitted when stream is capturing")


class WrongReplay(Replay):
    """A replay that gets the parameters wrong (as a graph reading stale memory would)."""

    def launch(self, graph: Callable[[], None]) -> None:
        super().launch(graph)
        model = MODELS[-1]
        model.buffer[0] += 1.0


MODELS: list[Model] = []


def _model(kernel_mode: str = "fused", backend: type = NumpyBackend, layers: list | None = None) -> Model:
    backend_made = backend(np, "test host", np.dtype("float64"), kernel_mode, 3)
    model = Model(layers or [Dense(6, "relu", input_dim=4), Dense(3, "softmax")], optimizer=Adam(0.01),
                  backend=backend_made)
    MODELS.append(model)
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((21, 4)), rng.integers(0, 3, 21)  # batches of 8: 8, 8 and a short 5


def _train(runtime: type[Replay] | None, monkeypatch: pytest.MonkeyPatch, graph: Any = "on",
           shuffle: bool = True) -> tuple[Model, Replay | None]:
    made: list[Replay] = []
    if runtime is not None:
        monkeypatch.setattr(graph_step, "runtime_for", lambda backend: made.append(runtime()) or made[-1])
    model = _model()
    model.fit(*_data(), epochs=2, batch_size=8, seed=1, verbose=0, graph=graph if runtime else "off",
              shuffle=shuffle)
    return model, made[0] if made else None


@pytest.mark.parametrize("shuffle", [True, False])
def test_graph_steps_train_as_eager_steps(monkeypatch: pytest.MonkeyPatch, shuffle: bool) -> None:
    eager, _ = _train(None, monkeypatch, shuffle=shuffle)
    graphed, runtime = _train(Replay, monkeypatch, shuffle=shuffle)
    assert graphed.trainer.graph_status == "on" and eager.trainer.graph_status == "off"
    assert len(runtime.captured) == 2  # one graph for full batches, one for the short last batch: each once
    assert runtime.launches == 6 and runtime.runs == 1  # every step replayed; one stream context for the run
    assert graphed.step == eager.step == 6
    np.testing.assert_allclose(graphed.buffer, eager.buffer, rtol=1e-12, atol=1e-12)
    for name in ("loss", "accuracy"):  # the running totals the graph adds to on the device
        assert graphed.trainer.history.history[name] == pytest.approx(eager.trainer.history.history[name], rel=1e-12)


@pytest.mark.parametrize("runtime, why, captures", [
    (FailingCapture, "capturing the step failed (RuntimeError: operation not permitted when stream is capturing)", 0),
    (WrongReplay, "the captured step disagreed with the eager one (parameters and moments off by 1)", 1)])
def test_a_failed_or_wrong_graph_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                     runtime: type[Replay], why: str, captures: int) -> None:
    eager, _ = _train(None, monkeypatch)
    fallen, used = _train(runtime, monkeypatch)
    assert fallen.trainer.graph_status == f"off ({why})"
    assert capsys.readouterr().err == f"xpnet: kernel replay off: {why}; training goes on with eager steps\n"
    assert len(used.captured) == captures and used.launches == captures  # tried once, never again
    np.testing.assert_allclose(fallen.buffer, eager.buffer, rtol=1e-12, atol=1e-12)  # the eager result stood


def test_graph_problems_name_what_prevents_a_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_step, "runtime_for", lambda backend: Replay())
    cases = {
        "the cpu backend has no graph step": (_model(backend=NoGraphs), False, False),
        "reference kernels launch eagerly": (_model("reference"), False, False),
        "streamed data changes its arrays every chunk": (_model(), True, False),
        "a data-parallel step reduces over the ranks between its launches": (_model(), False, True),
        "dropout draws new random numbers every step": (
            _model(layers=[Dense(6, "relu", input_dim=4), Dropout(0.5), Dense(3, "softmax")]), False, False),
        "activation copies its input outside its kernels": (
            _model(layers=[Dense(6, input_dim=4), Activation("relu"), Dense(3, "softmax")]), False, False),
    }
    for why, (model, streamed, parallel) in cases.items():
        assert graph_step.graph_step(model, "auto", 8, streamed, parallel) == (None, f"off ({why})")
        with pytest.raises(ConfigError, match=f"graph=on: .*{why}"):
            graph_step.graph_step(model, True, 8, streamed, parallel)
        assert graph_step.graph_step(model, "off", 8, streamed, parallel) == (None, "off")
    step, status = graph_step.graph_step(_model(), "auto", 8, False, False)
    assert status == "on" and isinstance(step.runtime, Replay)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_bad_graph_setting_is_one_clear_error(bad: Any) -> None:
    with pytest.raises(ConfigError, match="graph must be True, False or one of auto, on, off"):
        _model().fit(*_data(), epochs=1, verbose=0, graph=bad)


# ------------------------------------------------------------------------------- the CPU's kernel replay
def _cpu_model(layers: list, dtype: str, seed: int = 3) -> Model:
    return Model(layers, optimizer=Adam(0.01, schedule=Cosine(2)), device="cpu", dtype=dtype, seed=seed,
                 kernel_mode="fused")


CPU_MODELS = {
    "mlp": lambda: [Dense(13, "relu", input_dim=36), Dense(7, "tanh"), Dense(5, "softmax")],
    "cnn": lambda: [Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 1)), MaxPool2D(2), Flatten(),
                    Dense(5, "softmax")],
    "pooled cnn": lambda: [Conv2D(3, 3, padding="same", activation="relu", max_pool=2, input_shape=(6, 6, 1)),
                           Conv2D(4, 2, activation="tanh", max_pool=2), Flatten(), Dense(5, "softmax")],
    "normalised": lambda: [Reshape((6, 6, 1), input_shape=36), Conv2D(3, 3, strides=2, activation="tanh"),
                           BatchNorm(), AvgPool2D(1), Conv2D(4, 1, activation="leaky_relu"), GlobalAvgPool2D(),
                           Dense(5, "softmax")],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CPU_MODELS))
def test_a_kernel_replay_trains_as_eager_steps_bit_for_bit(name: str, dtype: str) -> None:
    """Two epochs with a short last batch, replayed against eager steps: the same kernels on the same arrays, so
    the same parameters, moments and losses, exactly."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((45, 36)), rng.integers(0, 5, 45)
    models = {}
    for graph in ("on", "off"):
        model = models[graph] = _cpu_model(CPU_MODELS[name](), dtype)
        model.fit(x.reshape(-1, *model.input_shape), y, epochs=2, batch_size=8, seed=2, verbose=0, graph=graph)
    assert models["on"].trainer.graph_status == "on" and models["off"].trainer.graph_status == "off"
    assert np.array_equal(models["on"].buffer, models["off"].buffer)
    assert np.array_equal(models["on"].state, models["off"].state)  # batch norm's running statistics
    for metric in ("loss", "accuracy"):
        assert models["on"].trainer.history.history[metric] == models["off"].trainer.history.history[metric]


def test_recording_checks_each_call_and_runs_none() -> None:
    backend = NumpyBackend.create(np.dtype("float64"), "fused", 0)
    runtime = KernelReplay(backend)
    p, g = np.zeros(5), np.ones(5)
    kernels = backend.kernels
    graph = runtime.capture(lambda: backend.kernels.sgd_update(p, g, 0.5))
    assert backend.kernels is kernels and not p.any()  # recorded, not run; the kernel set is back
    assert len(graph) == 1 and graph[0][0] is type(kernels).unchecked["sgd_update"]
    for _ in range(2):
        runtime.launch(graph)
    assert np.all(p == -1.0)
    with pytest.raises(ValueError, match="bias_gradient: dz of shape"):  # the kernel's own check, at recording
        runtime.capture(lambda: backend.kernels.bias_gradient(np.zeros((4, 3)), np.zeros(4)))
    assert backend.kernels is kernels


def test_a_replay_that_misses_an_array_operation_is_caught(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """A layer that copies outside its kernels but does not say so: its first replay reads the NaN the workspace
    was filled with, disagrees with the eager step, and the eager steps carry on."""
    monkeypatch.setattr(Activation, "outside_kernels", None)
    layers = lambda: [Dense(6, input_dim=4), Activation("tanh"), Dense(3, "softmax")]  # noqa: E731
    models = {}
    for graph in ("auto", "off"):
        model = models[graph] = _cpu_model(layers(), "float64")
        model.fit(*_data(), epochs=2, batch_size=8, seed=1, verbose=0, graph=graph)
    assert models["auto"].trainer.graph_status.startswith("off (the captured step disagreed with the eager one")
    assert "kernel replay off: the captured step disagreed" in capsys.readouterr().err
    assert np.array_equal(models["auto"].buffer, models["off"].buffer)


# ------------------------------------------------------------------------------------ on a real CUDA device
def _gpu_model(seed: int = 3) -> Model:
    return Model([Dense(32, "relu", input_dim=20), Dense(5, "softmax")], optimizer=Adam(0.01, schedule=Cosine(3)),
                 device="gpu", dtype="float32", seed=seed, kernel_mode="fused")


@pytest.mark.gpu
def test_graph_on_a_device_trains_as_eager(capsys: pytest.CaptureFixture) -> None:
    """Real capture: several epochs with a short last batch, graph against eager steps."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((203, 20)).astype(np.float32), rng.integers(0, 5, 203)
    models = {}
    for graph in ("on", "off"):
        model = models[graph] = _gpu_model()
        model.fit(x, y, epochs=3, batch_size=32, seed=2, verbose=0, graph=graph)
    assert models["on"].trainer.graph_status == "on", capsys.readouterr().err
    np.testing.assert_allclose(models["on"].get_parameters(), models["off"].get_parameters(), rtol=1e-4, atol=1e-5)
    assert models["on"].evaluate(x, y) == pytest.approx(models["off"].evaluate(x, y), rel=1e-4)


@pytest.mark.gpu
def test_a_replayed_graph_reads_its_inputs_from_device_memory_in_stream_order() -> None:
    """One captured update replayed with a new rate written before each replay, on the same stream, and the
    results read on the legacy stream after the run: each replay saw the rate written just before it."""
    import cupy

    kernels = CudaKernels()
    runtime = graph_step.CupyGraphs(get_backend("gpu"))
    p = cupy.zeros(3 * 2**20 + 17, dtype=cupy.float32)  # > 2^20 elements: the grid-stride loop covers them
    g = cupy.ones_like(p)
    hyper = cupy.zeros(2, dtype=cupy.float64)
    with runtime.running():
        graph = runtime.capture(lambda: kernels.sgd_update_hyper(p, g, hyper))
        assert float(p[0]) == 0.0  # capturing ran nothing
        for rate in (1.0, 2.0, 4.0):
            hyper[0] = rate
            runtime.launch(graph)
    assert np.all(p.get() == -7.0)
