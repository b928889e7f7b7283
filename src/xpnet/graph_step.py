"""One training step recorded once and replayed, checked once against an eager step.

A step is about a dozen kernel launches, each costing the host microseconds (Numba's launch path, CuPy's), so a
small model's GPU step is bound by the host. A CUDA graph records the step's launches once and replays them with
one call. On the CPU the Python between the kernels (the layers' passes, the kernels' checks) runs with caches the
kernels have just filled and costs 10-20 us a kernel; ``xpnet.kernel_replay`` records the step's kernel calls once
and replays them. A graph replays unchanged, so everything that differs between steps lives in arrays the
host rewrites before each replay (on the device, on the same stream): the batch's row indices (``idx``: the step
gathers its batch from the resident training set through them) and the optimizer's ``[learning rate, step]``
(``hyper``: the ``*_update_hyper`` kernels read them, Adam computing its bias corrections from them). The short
last batch of an epoch has its own graph.

The first replay of each graph is checked: the step runs eagerly first (on the same batch, from the same
parameters, moments, state and running totals), those results are kept aside, everything is put back, the
workspace is filled with NaN (a replay that missed an operation must not find the eager pass's values there), the
step is recorded and replayed, and the two results must agree within the dtype's tolerance. A mismatch or a
recording error keeps the eager results, prints one line saying why, and the run continues with eager steps (the
trainer's ordinary step). Only a backend whose class names a ``graph_runtime``, with its fused kernels, gets here;
``GraphRuntime`` is what the driver needs from it (``CupyGraphs``, ``xpnet.kernel_replay.KernelReplay``), so the
driver is tested with a stand-in.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from xpnet.backend_base import one_line
from xpnet.errors import ConfigError

if TYPE_CHECKING:
    from xpnet.model import Model, ModelWorkspace

GRAPH_SETTINGS = ("auto", "on", "off")
"""``Model.fit(graph=...)`` and ``--graph``: auto records and replays where it can (fused kernels), on insists."""

TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
"""Relative agreement the first replay must reach with the eager step (float64 atomics may sum in any order)."""


def graph_setting(value: Any) -> str:
    """``value`` (True, False, "auto", "on", "off") as one of GRAPH_SETTINGS; ConfigError for anything else."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in GRAPH_SETTINGS:
        return value
    raise ConfigError(f"graph must be True, False or one of {', '.join(GRAPH_SETTINGS)}, got {value!r}")


class GraphRuntime(Protocol):
    """What the graph step needs from the device: a context to run in, record into a graph, replay. A backend names
    its runtime class (``Backend.graph_runtime``), made with the backend."""

    name: str
    """What results call it ("CUDA graph step", "kernel replay")."""
    records_array_operations: bool
    """Whether a recording holds the array operations a step makes outside kernel calls too."""

    def running(self) -> contextlib.AbstractContextManager[None]:
        """Make the capture stream current for a whole run (every launch and copy of the run is ordered on it)."""

    def capture(self, step: Callable[[], None]) -> Any:
        """The graph of what ``step`` launches (nothing runs while it is recorded)."""

    def launch(self, graph: Any) -> None:
        """Queue one replay of ``graph`` on the stream."""


class CupyGraphs:
    """``GraphRuntime`` on CuPy: a non-blocking stream, stream capture, ``Graph.launch``.

    Numba's launches go to CuPy's current stream (``kernels/numba_cuda.py``), so they are captured with CuPy's.
    What the step allocates while captured comes from a memory pool of its own, kept with the graphs and used for
    nothing else, so no later allocation reuses memory a replay still writes."""

    name = "CUDA graph step"
    records_array_operations = True  # stream capture takes CuPy's launches as well as the kernels'

    def __init__(self, backend: Any) -> None:
        cupy = self.cupy = backend.xp
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.pool = cupy.cuda.MemoryPool()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        # a non-blocking stream does not wait for the legacy default stream: finish what was queued there first
        self.cupy.cuda.Device().synchronize()
        with self.stream:
            try:
                yield
            finally:
                self.stream.synchronize()

    def capture(self, step: Callable[[], None]) -> Any:
        with self.cupy.cuda.using_allocator(self.pool.malloc):
            self.stream.begin_capture()
            try:
                step()
            finally:
                graph = self.stream.end_capture()  # ends the capture even when the step raised
        return graph

    def launch(self, graph: Any) -> None:
        graph.launch(self.stream)


def graph_problem(model: Model, streamed: bool, data_parallel: bool) -> str | None:
    """Why ``model``'s steps cannot be captured as a graph, in a few words, or None when they can."""
    backend = model.backend
    if backend.graph_runtime is None:
        return f"the {backend.name} backend has no graph step"
    if backend.kernel_mode != "fused":
        return f"{backend.kernel_mode} kernels launch eagerly"
    if streamed:
        return "streamed data changes its arrays every chunk"
    if data_parallel:
        return "a data-parallel step reduces over the ranks between its launches"
    drawing = [layer.type_name for layer in model.layers if layer.uses_step]
    if drawing:
        return f"{', '.join(drawing)} draws new random numbers every step"
    if not model.optimizer.reads_rate_from_device:
        return f"{model.optimizer.describe()} has no update reading its rate from device memory"
    if not backend.graph_runtime.records_array_operations:
        outside = [f"{layer.type_name} {layer.outside_kernels}" for layer in model.layers if layer.outside_kernels]
        if outside:
            return f"{', '.join(outside)} outside its kernels"
    return None


def runtime_for(backend: Any) -> GraphRuntime:
    """The backend's graph runtime: CUDA graphs on the GPU, the kernel replay on the CPU."""
    return backend.graph_runtime(backend)


def notice(text: str) -> None:
    """The one-line notice of a graph step turned off, on stderr."""
    print(f"xpnet: {text}", file=sys.stderr)


class GraphStep:
    """Training steps of ``model`` over the resident ``x``, ``y`` as replays of captured graphs (one per batch size).

    ``step`` does one step, or returns False once the graph step is off (then the trainer steps eagerly). ``status``
    says which, for results: "on" or "off (why)"."""

    def __init__(self, model: Model, runtime: GraphRuntime, capacity: int,
                 notify: Callable[[str], None] = notice) -> None:
        backend = model.backend
        self.model, self.runtime, self.notify = model, runtime, notify
        self.idx = backend.zeros(capacity, dtype=np.int64)
        self.hyper = backend.zeros(2, dtype=np.float64)
        self.graphs: dict[int, Any] = {}
        self.status = "on"

    def running(self) -> contextlib.AbstractContextManager[None]:
        """The context a run goes in (the capture stream made current)."""
        return self.runtime.running()

    def step(self, x: Any, y: Any, order: Any, lo: int, hi: int, workspace: ModelWorkspace, stats: Any,
             progress: float) -> bool:
        """One optimizer step on rows ``order[lo:hi]`` of ``x``, ``y`` (rows ``lo:hi`` when ``order`` is None),
        into ``workspace``, adding loss and correct count to ``stats``; False (nothing done) once the graph step
        is off."""
        if self.status != "on":
            return False
        model, rows = self.model, hi - lo
        xp = model.backend.xp
        self.idx[:rows] = order[lo:hi] if order is not None else xp.arange(lo, hi)
        model.step += 1
        model.backend.copy_from_host(self.hyper, model.optimizer.hyper_values(model.step, progress))

        def run() -> None:
            self._body(x, y, rows, workspace, stats)

        graph = self.graphs.get(rows)
        if graph is None:
            self._first(rows, run, workspace, stats)
        else:
            self.runtime.launch(graph)
        return True

    def _body(self, x: Any, y: Any, rows: int, workspace: ModelWorkspace, stats: Any) -> None:
        """The step as launches whose every input sits at a fixed address: what is captured, and what the check
        runs eagerly."""
        model = self.model
        kernels, buffer, idx = model.backend.kernels, model.buffer, self.idx[:rows]
        kernels.gather_rows(x, idx, workspace.x)
        kernels.gather_rows(y, idx, workspace.y)
        model.compute_gradients(workspace.x, workspace.y, workspace, stats)
        model.optimizer.update_from_device(kernels, buffer[0], buffer[1], buffer[2:], self.hyper)

    def _values(self, stats: Any) -> list[Any]:
        """Copies of everything a step changes (on the device, in stream order)."""
        return [self.model.buffer.copy(), self.model.state.copy(), stats.copy()]

    def _restore(self, values: list[Any], stats: Any) -> None:
        for target, value in zip((self.model.buffer, self.model.state, stats), values, strict=True):
            target[...] = value

    def _first(self, rows: int, run: Callable[[], None], workspace: ModelWorkspace, stats: Any) -> None:
        """The first step of batches of ``rows`` rows: eager (whatever a step sets up on first use exists before
        it is recorded), then recorded and replayed from the same start, over a workspace filled with NaN first
        (so what a replay misses cannot pass for the eager step's values); the graph is kept when the two agree,
        else the eager result stands and the graph step is off."""
        before = self._values(stats)
        run()
        eager = self._values(stats)
        self._restore(before, stats)
        _poison(workspace)
        try:
            graph = self.runtime.capture(run)
            self.runtime.launch(graph)
        except Exception as exc:  # whatever CUDA, CuPy or Numba raise while recording or replaying
            self._off(f"capturing the step failed ({one_line(exc)})", eager, stats)
            return
        differs = self._difference(eager, self._values(stats))
        if differs:
            self._off(f"the captured step disagreed with the eager one ({differs})", eager, stats)
            return
        self.graphs[rows] = graph

    def _difference(self, expected: list[Any], got: list[Any]) -> str | None:
        """Where ``got`` differs from ``expected`` beyond the dtype's tolerance, in a few words, or None."""
        xp = self.model.backend.xp
        tolerance = TOLERANCE.get(self.model.dtype, 1e-4)
        for name, want, have in zip(("parameters and moments", "state", "loss totals"), expected, got, strict=True):
            if not want.size:
                continue
            scale = float(xp.abs(want).max())  # on the device, in the arrays' dtype: two numbers come back
            error = float(xp.abs(have - want).max())
            if not error <= tolerance * max(scale, 1.0):  # NaN differs too
                return f"{name} off by {error:.3g}"
        return None

    def _off(self, why: str, eager: list[Any], stats: Any) -> None:
        """Keep the eager step's results and turn the graph step off, saying so on one line."""
        self._restore(eager, stats)
        self.graphs.clear()
        self.status = f"off ({why})"
        self.notify(f"{self.model.backend.graph_runtime.name} off: {why}; training goes on with eager steps")


def _poison(workspace: ModelWorkspace) -> None:
    """Fill every floating-point buffer of ``workspace`` with NaN (a step writes each before it reads it)."""
    arrays = [workspace.x, workspace.y, workspace.dy]
    for layer in workspace.layers:
        arrays += [*layer.batch.values(), *layer.fixed.values()]
    for array in arrays:
        if array is not None and array.dtype.kind == "f":
            array.fill(np.nan)


def graph_step(model: Model, setting: Any, capacity: int, streamed: bool, data_parallel: bool,
               runtime: Callable[[Any], GraphRuntime] | None = None) -> tuple[GraphStep | None, str]:
    """The graph step a run uses for ``setting`` ("auto", "on", "off" or a bool), or None, with its status for
    results ("on", "off", "off (why)"); ConfigError when "on" cannot be honoured. ``runtime`` makes the device side
    from the backend (default ``runtime_for``)."""
    setting = graph_setting(setting)
    if setting == "off":
        return None, "off"
    problem = graph_problem(model, streamed, data_parallel)
    if problem is not None:
        if setting == "on":
            raise ConfigError(f"graph=on: the training step cannot be recorded and replayed here: {problem}",
                              hint="use graph auto or off (--graph auto)")
        return None, f"off ({problem})"
    step = GraphStep(model, (runtime or runtime_for)(model.backend), capacity)
    return step, step.status
