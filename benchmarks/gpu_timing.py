"""The gpu section's timings against PyTorch, the CPU and the device's copy bandwidth, and host overheads.

Each part fills ``result`` as it goes, so that what it measured survives when it runs out of time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import cnn, kernels, peers, training_step, wide_reference
from benchmarks.gpu import GpuRun
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet import graph_step
from xpnet.backend import BACKENDS, Backend
from xpnet.builders import mlp
from xpnet.model import Model

EPOCH_REPEATS, CNN_REPEATS, STEP_REPEATS = 3, 2, 5
KERNEL_SIZES = [10**8, 10**4, 10**6, 10**5, 10**7]
"""1e8 first (the bandwidth target), then 1e4 (launch-bound), then the rest, in case the budget runs out."""
REHEARSAL_KERNEL_SIZES = [1000]
REHEARSAL_COPY_ELEMENTS = 10**6
KERNEL_SAMPLE_SECONDS = 0.01
"""Each kernel's sample lasts at least this long (calls repeated): the GPU's timings are steady."""
KERNEL_BUDGET_SHARE = 0.85
"""The kernels part starts no new case after this share of its budget."""
LAUNCHES = {False: 2000, True: 5}
"""Launches timed for the per-launch host overhead (GPU, rehearsal)."""
LAUNCH_ELEMENTS = 1024
def _graph_epoch(run: GpuRun, x: np.ndarray, y: np.ndarray) -> tuple[Candidate, Model] | str:
    """An epoch of fit(graph="on") (every step a replay of a captured graph), and the model, whose trainer's
    ``graph_status`` says whether the graph stayed on (a failed check falls back to eager steps); or why there
    is no graph step here."""
    backend = run.config.backend(run.device)
    model = mlp(peers.SIZES, optimizer="adam", lr=peers.LR, backend=backend)
    problem = graph_step.graph_problem(model, streamed=False, data_parallel=False)
    if problem is not None:
        return f"not available: {problem}"
    x_dev, y_dev = backend.asarray(x), backend.asarray(y)
    return Candidate(lambda: model.fit(x_dev, y_dev, epochs=1, batch_size=peers.BATCH, verbose=0, graph="on"),
                     backend.synchronize), model


def mnist_epoch(run: GpuRun, result: dict[str, Any]) -> None:
    """Seconds per MNIST epoch (784-256-128-10, batch 128, Adam, float32): xpnet graph, fused and reference, and
    PyTorch eager and with CUDA graphs, interleaved after one warm-up epoch each; each against PyTorch eager."""
    task = run.mnist()
    x, labels = task.x_train, task.y_train
    one_hot = np.eye(peers.SIZES[-1], dtype=np.float32)[labels]
    config = run.on(EPOCH_REPEATS)
    candidates: dict[str, Candidate] = {}
    missing: dict[str, str] = {}
    graphed = _graph_epoch(run, x, one_hot)
    if isinstance(graphed, str):
        missing["xpnet graph"] = graphed
    else:
        candidates["xpnet graph"], graphed = graphed
    for mode in ("fused", "reference"):
        candidates[f"xpnet {mode}"] = peers.xpnet_epoch(config, run.device, mode, x, one_hot, graph="off")
    if peers.torch_version() is None:
        missing["torch eager"] = missing["torch cuda graphs"] = "PyTorch is not installed"
    else:
        eager = peers.TorchPeer(x, labels.astype(np.int64), run.torch_device)
        candidates["torch eager"] = Candidate(eager.epoch, eager.sync)
        try:
            graphed = peers.TorchGraphPeer(x, labels.astype(np.int64), run.torch_device)
            candidates["torch cuda graphs"] = Candidate(graphed.epoch, graphed.sync)
        except Exception as exc:  # recorded: torch's graphs need CUDA, and capture can fail on some setups
            missing["torch cuda graphs"] = f"not available: {type(exc).__name__}: {exc}"
    for name, candidate in list(candidates.items()):  # the warm-up epoch; a candidate that fails is left out
        try:
            candidate.sample()
        except Exception as exc:  # recorded: a new code path (the graph step) must not lose the others' times
            missing[name] = f"failed: {type(exc).__name__}: {exc}"
            del candidates[name]
    samples = interleave(candidates, config.repeats, warmup=0)
    medians = {name: Stats.of(times).median for name, times in samples.items()}
    eager_s = medians.get("torch eager")
    result["rows"] = [{"implementation": name, "s_per_epoch": seconds, "runs": config.repeats,
                       "ratio_to_torch_eager": seconds / eager_s if eager_s else None}
                      for name, seconds in medians.items()]
    for row in result["rows"]:
        if row["implementation"] == "xpnet graph" and not isinstance(graphed, str):
            row["status"] = f"graph {graphed.trainer.graph_status}"  # "graph on", or eager steps after "off (why)"
    result["rows"] += [{"implementation": name, "s_per_epoch": None, "status": why} for name, why in missing.items()]
    result["notes"] = [f"{len(x)} samples, batch {peers.BATCH}, {'-'.join(map(str, peers.SIZES))}, Adam lr "
                       f"{peers.LR}, float32, on {run.device}; torch cuda graphs drops the last short batch"]
    log(f"gpu: mnist epoch {result['rows']}")


def cnn_epoch(run: GpuRun, result: dict[str, Any]) -> None:
    """The CLI's CNN epoch, xpnet against PyTorch eager on the same device."""
    result["rows"], result["notes"] = cnn.epoch_rows(run.on(CNN_REPEATS), run.mnist())


def wide_mlp(run: GpuRun, result: dict[str, Any]) -> None:
    """One 784-4096-4096-10 step at batch 1024 on the device, against the committed 2-core CPU figure (and this
    machine's own CPU, a few steps). In a rehearsal: 784-64-64-10 at batch 32 on the CPU backend."""
    width, batch = (64, 32) if run.rehearse else (wide_reference.WIDTH, wide_reference.BATCH)
    config = run.on(STEP_REPEATS)
    step = training_step.step_candidate(config, run.device, width, batch)
    step.calibrate(training_step.MIN_SAMPLE_SECONDS[run.rehearse])
    seconds = Stats.of(interleave({"step": step}, config.repeats, config.warmup)["step"]).median
    result["device"] = {"device": run.device, "width": width, "batch": batch, "ms_per_step": seconds * 1e3}
    log(f"gpu: wide step {result['device']}")
    reference = wide_reference.read()
    result["cpu_2_core"] = reference
    result["speedup_over_2_core_cpu"] = reference["ms_per_step"] / (seconds * 1e3) if not run.rehearse else None
    local = training_step.step_candidate(run.on(1), "cpu", width, batch)
    local_s = Stats.of(interleave({"cpu": local}, 2, 1)["cpu"]).median
    result["this_machine_cpu"] = {"ms_per_step": local_s * 1e3, "note": "this machine's CPU, all cores, 2 steps"}
    if run.rehearse:
        result["note"] = "rehearsal: small widths; no speedup is computed against the committed full-size figure"


def kernel_bandwidth(run: GpuRun, result: dict[str, Any]) -> None:
    """Each fused CUDA kernel and its reference at 1e4..1e8 elements: GB/s and share of copy bandwidth.
    In a rehearsal: the simulator's kernels on NumPy arrays at 1,000 elements (timings mean nothing)."""
    started = time.perf_counter()
    config = run.on(repeats=3)
    backend = config.backend(run.device)
    copy = kernels.copy_bandwidth(config, backend, REHEARSAL_COPY_ELEMENTS if run.rehearse else None)
    device = "cuda simulator" if run.rehearse else "gpu"
    result["copy_bandwidth"] = {device: copy}
    result["rows"], skipped = [], []
    sets = {label: kernels.implementations(kernel, BACKENDS["gpu"]) for label, (kernel, _) in kernels.CASES.items()}
    rng = np.random.default_rng(0)
    for n in REHEARSAL_KERNEL_SIZES if run.rehearse else KERNEL_SIZES:
        for label in kernels.CASES:
            if time.perf_counter() - started > KERNEL_BUDGET_SHARE * run.budget:
                skipped.append(f"{label} at {n:.0e}")
                continue
            row = kernels.case_row(backend, sets[label], label, n, rng, copy["gb_per_s"],
                                   None if run.rehearse else KERNEL_SAMPLE_SECONDS, config.repeats)
            result["rows"].append({**row, "device": device})
    result["rows"].sort(key=lambda row: (list(kernels.CASES).index(row["kernel"]), row["elements"]))
    # sorted by size within each kernel, so the last row of each kernel wins: its largest
    result["fused_copy_fraction_at_largest"] = {r["kernel"]: r["fused_copy_fraction"] for r in result["rows"]}
    if skipped:
        result["skipped"] = f"not measured, the part's budget was spent: {'; '.join(skipped)}"




def _launch_times(function: Callable[[], object], backend: Backend, launches: int) -> dict[str, float]:
    """Microseconds per call on the host alone (no synchronisation), and per call until the device is done."""
    function()
    backend.synchronize()
    started = time.perf_counter()
    for _ in range(launches):
        function()
    host = time.perf_counter() - started
    backend.synchronize()
    return {"host_us": host / launches * 1e6, "wall_us": (time.perf_counter() - started) / launches * 1e6}


def _torch_launch(run: GpuRun, launches: int) -> dict[str, Any]:
    import torch

    p, g = (torch.ones(LAUNCH_ELEMENTS, device=run.torch_device) for _ in range(2))
    sync = torch.cuda.synchronize if run.torch_device == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(launches):
        p.add_(g, alpha=-1e-3)
    host = time.perf_counter() - started
    sync()
    return {"host_us": host / launches * 1e6, "wall_us": (time.perf_counter() - started) / launches * 1e6}


def _step_times(run: GpuRun, mode: str, steps: int) -> dict[str, float]:
    """Host and wall milliseconds per training step of the MNIST MLP at batch 128 with ``mode`` kernels."""
    backend = run.config.backend(run.device, mode)
    model = mlp(peers.SIZES, optimizer="adam", lr=peers.LR, backend=backend)
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.random((peers.BATCH, peers.SIZES[0]), dtype=np.float32))
    y = backend.asarray(np.eye(peers.SIZES[-1], dtype=np.float32)[rng.integers(0, peers.SIZES[-1], peers.BATCH)])
    workspace, stats = model.workspace(peers.BATCH, backward=True), backend.zeros(2, dtype=np.float64)
    times = _launch_times(lambda: model.train_step(x, y, workspace, stats), backend, steps)
    return {"host_ms": times["host_us"] / 1e3, "wall_ms": times["wall_us"] / 1e3}


def _graph_step_times(run: GpuRun, steps: int) -> dict[str, Any]:
    """Host and wall milliseconds per graph step of the MNIST MLP at batch 128: writing the batch's indices and
    ``[lr, step]`` on the stream, then one replay (the first step captures and checks, outside the timing)."""
    backend = run.config.backend(run.device)
    model = mlp(peers.SIZES, optimizer="adam", lr=peers.LR, backend=backend)
    problem = graph_step.graph_problem(model, streamed=False, data_parallel=False)
    if problem is not None:
        return {"status": f"not available: {problem}"}
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.random((4 * peers.BATCH, peers.SIZES[0]), dtype=np.float32))
    y = backend.asarray(np.eye(peers.SIZES[-1], dtype=np.float32)[rng.integers(0, peers.SIZES[-1], 4 * peers.BATCH)])
    order = backend.asarray(rng.permutation(4 * peers.BATCH))
    workspace, stats = model.workspace(peers.BATCH, backward=True), backend.zeros(2, dtype=np.float64)
    step = graph_step.GraphStep(model, graph_step.runtime_for(backend), peers.BATCH)
    with step.running():
        def one() -> None:
            step.step(x, y, order, 0, peers.BATCH, workspace, stats, 0.0)

        one()
        if step.status != "on":
            return {"status": f"graph {step.status}"}
        times = _launch_times(one, backend, steps)
    return {"host_ms": times["host_us"] / 1e3, "wall_ms": times["wall_us"] / 1e3, "status": "graph on"}


def launch_overhead(run: GpuRun, result: dict[str, Any]) -> None:
    """Per-launch host time of one fused kernel (sgd_update on 1,024 elements), of its reference (CuPy) and of
    PyTorch's in-place add; per-step host and wall time of the MNIST MLP's eager step (fused and reference), and
    of its graph step. Host time much above a step's device time: host-bound."""
    launches = LAUNCHES[run.rehearse]
    backend = run.config.backend(run.device)
    p, g = (backend.asarray(np.ones(LAUNCH_ELEMENTS, np.float32)) for _ in range(2))
    rows = []
    for mode in ("fused", "reference"):
        update = BACKENDS["gpu"].kernel_set(mode)().sgd_update
        rows.append({"launch": f"xpnet {mode} sgd_update", **_launch_times(lambda u=update: u(p, g, 1e-3), backend,
                                                                          launches)})
    if peers.torch_version() is not None:
        rows.append({"launch": "torch add_", **_torch_launch(run, launches)})
    result["per_launch"] = rows
    steps = max(2, launches // 20)
    result["per_step"] = [{"step": f"xpnet eager {mode}", **_step_times(run, mode, steps)}
                          for mode in ("fused", "reference")]
    result["per_step"].append({"step": "xpnet graph", **_graph_step_times(run, steps)})
    log(f"gpu: launches {rows}; steps {result['per_step']}")
