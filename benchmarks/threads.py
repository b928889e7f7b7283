"""Training beside other work: xpnet's thread governor against fixed thread counts and PyTorch.

- Epoch seconds of the MLP (784-256-128-10, Adam, batch 128) and of the quick CNN (``xpnet train mnist --model
  cnn --recipe none --filters 8,32 --batch-size 64 --dropout 0 --lr 5e-3 --shift 0``) for xpnet on 1 thread, on
  every core, and governed (``auto``, the default), and for PyTorch on every core: on an idle machine and under
  each load of ``CONDITIONS`` (busy processes, a second copy of the same training, a low-priority PyTorch
  training), each started before and stopped after every measurement. Each measurement is its own process (``python -m
  benchmarks.threads epoch ...``): one warm-up epoch on a slice of the data (compilation, and the governor's first
  probe), then the timed epochs.
- A per-layer profile of the quick CNN's training step (forward and backward of each layer, the loss, the
  optimizer update) on 1 thread and on every core, idle.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.config import REPO_ROOT, Config, make_config
from benchmarks.peers import torch_version
from benchmarks.placement import placement
from benchmarks.timing import log

WORKLOADS = ("mlp", "cnn")
EPOCHS = {"mlp": 3, "cnn": 1}
"""Timed epochs per measurement in full mode (quick mode: 1 epoch of QUICK_SAMPLES samples)."""
QUICK_SAMPLES = 512
WARMUP_SAMPLES = 1024
SETTLE_SECONDS = {True: 0.5, False: 3.0}
"""How long a load runs before a measurement starts (quick, full): a training load gets past its imports."""
PROFILE_STEPS = {True: 3, False: 40}
ROUNDS = {True: 1, False: 3}
"""Rounds of every candidate per row (quick, full): one epoch process is one sample of a VM whose speed drifts by up
to 2x within minutes (the idle CNN's two-thread speed-up read 1.58x, 1.84x and 1.93x in three rounds of one minute on
the 2-core Intel VM, 2026-12-06), so a cell is the median of its rounds."""
QUICK_SKIPS = ("one busy process", "two busy processes", "a low-priority PyTorch training")
"""Conditions quick mode leaves out: the busy loops, and the PyTorch load, whose worker the idle rows' PyTorch
candidate already runs (the second copy stays, for the harness's loads)."""
BUSY = [sys.executable, "-c", "while 1: pass"]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "XPNET_THREADS")


def cores() -> int:
    from xpnet.threads import usable_cores

    return usable_cores()


def candidates(torch: bool) -> dict[str, tuple[str, str]]:
    """Name -> (implementation, $XPNET_THREADS) of everything timed under each condition (PyTorch when
    ``torch``: it imports here)."""
    xpnet = {"xpnet 1 thread": ("xpnet", "1"), f"xpnet {cores()} threads": ("xpnet", str(cores())),
             "xpnet auto (governed)": ("xpnet", "auto")}
    return {**xpnet, f"torch {cores()} threads": ("torch", str(cores()))} if torch else xpnet


def worker_command(workload: str, implementation: str, config: Config, epochs: int) -> list[str]:
    mode = "quick" if config.quick else "full"
    return [sys.executable, "-m", "benchmarks.threads", "epoch", workload, implementation, mode,
            str(config.data_dir), str(epochs)]


def _second_training(command: list[str]) -> list[list[str]]:
    return [command[:-1] + ["1000000"]]  # the same training, epochs without end (stopped after the measurement)


def low_priority_torch(config: Config) -> Callable[[list[str]], list[list[str]]]:
    torch = ["nice", "-n", "19", "env", f"XPNET_THREADS={cores()}", *worker_command("mlp", "torch", config, 1000000)]
    return lambda command: [torch]  # on every core, whatever the measured command's count


def conditions(config: Config, torch: bool) -> dict[str, Callable[[list[str]], list[list[str]]]]:
    """Condition name -> the load commands to run beside a measurement's command (quick mode: idle and the second
    copy, ``QUICK_SKIPS``; the PyTorch load when ``torch``)."""
    every = {"idle": lambda command: [], "one busy process": lambda command: [BUSY],
             "two busy processes": lambda command: [BUSY, BUSY], "a second copy of the same training": _second_training}
    if torch:
        every["a low-priority PyTorch training"] = low_priority_torch(config)
    return {name: loads for name, loads in every.items() if not config.quick or name not in QUICK_SKIPS}


def workloads(config: Config, condition: str) -> tuple[str, ...]:
    """Both workloads; in quick mode the MLP alone under load."""
    return WORKLOADS if not config.quick or condition == "idle" else ("mlp",)


def environment(threads: str) -> dict[str, str]:
    """This process's environment without thread limits, then ``$XPNET_THREADS`` (PyTorch's count, for it)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return {**env, "XPNET_THREADS": threads, "XPNET_DEVICE": "cpu"}


def measure(command: list[str], threads: str, loads: list[list[str]], settle: float) -> dict[str, Any]:
    """Run ``command`` (its JSON result line) while ``loads`` run, each load started ``settle`` s before it and
    stopped right after it; with whether the cores shared a cache just before and just after (no load running)."""
    env = environment(threads)
    before = placement()["shared cache"]
    started = [subprocess.Popen(load, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for load in loads]
    try:
        time.sleep(settle if loads else 0)
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    finally:
        for process in started:
            process.kill()
            process.wait()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "shared cache": [before, placement()["shared cache"]]}


def shared_probes(results: list[dict[str, Any]]) -> str | None:
    """``7/8``: how many of the placement probes around ``results`` found one shared cache (None: one core)."""
    probes = [shared for result in results for shared in result["shared cache"]]
    return None if None in probes else f"{sum(probes)}/{len(probes)}"


def measure_row(config: Config, condition: str, workload: str, loads: Callable[[list[str]], list[list[str]]],
                torch: bool) -> dict[str, Any]:
    """Every candidate on ``workload`` beside ``loads``, in ``ROUNDS`` rounds that each run every candidate once
    (so the VM's drift over minutes reaches every candidate alike): each candidate's median seconds and its rounds'
    seconds, and the governed epoch's ratios of medians to the best fixed count and to PyTorch."""
    row: dict[str, Any] = {"condition": condition, "workload": workload}
    epochs = 1 if config.quick else EPOCHS[workload]
    chosen = candidates(torch)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for _ in range(ROUNDS[config.quick]):
        for name, (implementation, threads) in chosen.items():
            command = worker_command(workload, implementation, config, epochs)
            results[name].append(measure(command, threads, loads(command), SETTLE_SECONDS[config.quick]))
    for name, measured in results.items():
        row[f"{name} s"] = statistics.median(result["seconds"] for result in measured)
        row[f"{name} s (rounds)"] = [result["seconds"] for result in measured]
    row["governed: threads at the end"] = [result["threads"] for result in results["xpnet auto (governed)"]]
    probes = [shared_probes(measured) for measured in results.values()]
    row["one shared cache (probes)"] = None if None in probes else " ".join(probes)
    fixed = [name for name, (implementation, threads) in chosen.items()
             if implementation == "xpnet" and threads != "auto"]
    governed = row["xpnet auto (governed) s"]
    row["governed / best fixed"] = governed / min(row[f"{name} s"] for name in fixed)
    row["governed / best fixed (rounds)"] = [
        auto / min(seconds) for auto, *seconds in zip(row["xpnet auto (governed) s (rounds)"], *(
            row[f"{name} s (rounds)"] for name in fixed), strict=True)]
    if torch:
        row["governed / torch"] = governed / row[f"torch {cores()} threads s"]
    return row


def run(config: Config) -> dict[str, Any]:
    """Every candidate on every workload under every condition; then the CNN step's profile."""
    rows, torch = [], torch_version() is not None
    for condition, loads in conditions(config, torch).items():
        for workload in workloads(config, condition):
            rows.append(measure_row(config, condition, workload, loads, torch))
            log(f"threads: {rows[-1]}")
    profile = [{"threads": count, **measure([sys.executable, "-m", "benchmarks.threads", "profile",
                                             "quick" if config.quick else "full", str(config.data_dir)],
                                            str(count), [], 0)} for count in sorted({1, cores()})]
    steps = [{"part": part, **{f"{p['threads']} thread ms": p["ms"][part] for p in profile}}
             for part in profile[0]["ms"]]
    log(f"threads: CNN step profile {steps}")
    notes = [
        f"seconds for {'1 epoch of ' + str(QUICK_SAMPLES) + ' samples' if config.quick else 'the epochs'} per "
        f"workload ({', '.join(f'{w}: {EPOCHS[w]}' for w in WORKLOADS)} epochs of MNIST in full mode), each "
        f"measurement its own process after a warm-up epoch of {WARMUP_SAMPLES} samples; loads started "
        f"{SETTLE_SECONDS[config.quick]} s before and stopped after each measurement",
        f"each row: {ROUNDS[config.quick]} round(s), each running every candidate once in turn; a candidate's "
        "seconds are the median of its rounds (all of them under '... s (rounds)'); the ratios are ratios of "
        "medians (each round's under '... (rounds)')",
        "busy process: python -c 'while 1: pass'; second copy: the same command without end; low-priority "
        "PyTorch training: the MLP in PyTorch on every core under nice -n 19",
        f"xpnet N threads: XPNET_THREADS=N (pinned); auto: the governor; torch: torch.set_num_threads({cores()})",
        "profile: medians over steps of the quick CNN at batch 64, each layer's forward and backward, the loss "
        "and the optimizer update",
        "one shared cache (probes): for each candidate of the row in turn, how many of the placement probes "
        "(benchmarks/placement.py) just before and just after each of its measurements, with no load running, "
        "found the first two cores sharing a cache; on a VM whose host runs the vCPUs on cores of separate "
        "caches, two threads run no faster than one",
    ]
    if not torch:
        notes.append("PyTorch absent (not importable): no PyTorch candidate, load or governed / torch ratio")
    return {"rows": rows, "cnn_step_profile": steps, "notes": notes,
            "cnn_step_profile: one shared cache (probes)": {f"{p['threads']} thread": shared_probes([p])
                                                            for p in profile}}


# ------------------------------------------------------------------------------------------- worker processes
def _mnist(config: Config, samples: int | None) -> Any:
    task = config.mnist()
    if samples:
        task.x_train, task.y_train = task.x_train[:samples], task.y_train[:samples]
    return task


def _xpnet_trainer(workload: str, config: Config, x: np.ndarray, labels: np.ndarray) -> Callable[[int, int], None]:
    """A function training ``workload`` in xpnet for ``epochs`` epochs over the first ``n`` samples, in one ``fit``
    (as a user trains: a recorded step's first-step check is paid once, not once an epoch)."""
    from benchmarks.cnn import QUICK_RUN
    from benchmarks.peers import BATCH, LR, SIZES
    from xpnet.builders import mlp
    from xpnet.tasks import build_model

    backend = config.backend("cpu")
    if workload == "mlp":
        model, batch, y = mlp(SIZES, optimizer="adam", lr=LR, backend=backend), BATCH, np.eye(10, dtype=np.float32)[
            labels]
    else:
        model, batch, y = build_model("mnist", config.mnist(), QUICK_RUN, backend), QUICK_RUN["batch_size"], labels
    return lambda n, epochs: model.fit(x[:n], y[:n], epochs=epochs, batch_size=batch, verbose=0)


def _torch_trainer(workload: str, x: np.ndarray, labels: np.ndarray) -> Callable[[int, int], None]:
    from benchmarks.cnn import QUICK_RUN, TorchCnn
    from benchmarks.peers import TorchPeer

    peer = TorchPeer(x, labels.astype(np.int64), "cpu") if workload == "mlp" else TorchCnn(x, labels, "cpu",
                                                                                          QUICK_RUN)
    full_x, full_y = peer.x, peer.y

    def train(n: int, epochs: int) -> None:
        peer.x, peer.y = full_x[:n], full_y[:n]
        for _ in range(epochs):
            peer.epoch()

    return train


def epoch_worker(workload: str, implementation: str, mode: str, data_dir: str, epochs: str) -> None:
    """Print as JSON the seconds of ``epochs`` epochs (after a warm-up epoch on a slice) and the thread count."""
    config = make_config(mode == "quick", Path(data_dir), "cpu")
    task = _mnist(config, QUICK_SAMPLES if config.quick else None)
    if implementation == "torch":
        import torch

        torch.set_num_threads(int(os.environ["XPNET_THREADS"]))
        train = _torch_trainer(workload, task.x_train, task.y_train)
    else:
        train = _xpnet_trainer(workload, config, task.x_train, task.y_train)
    train(WARMUP_SAMPLES, 1)
    started = time.perf_counter()
    train(len(task.y_train), int(epochs))
    seconds = time.perf_counter() - started
    if implementation == "torch":
        threads = f"{torch.get_num_threads()} threads"
    else:
        from xpnet import threads as owner

        threads = owner.describe()
    print(json.dumps({"seconds": seconds, "threads": threads}), flush=True)


def training_batch(workload: str, quick: bool, data_dir: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    """The MLP (batch 128) or the quick CNN (batch 64) on the CPU with one training batch on the device, ready for
    ``model.train_step``: backend, model, workspace, stats, flat x rows and y (the thread counts set from
    ``$XPNET_THREADS``: no ``Model.fit`` here to do it)."""
    from benchmarks.cnn import QUICK_RUN
    from benchmarks.peers import BATCH, LR, SIZES
    from xpnet import inputs, threads
    from xpnet.builders import mlp
    from xpnet.tasks import build_model

    threads.configure()
    config = make_config(quick, Path(data_dir), "cpu")
    backend = config.backend("cpu")
    if workload == "mlp":
        task = _mnist(config, BATCH)
        model, batch, labels = mlp(SIZES, optimizer="adam", lr=LR, backend=backend), BATCH, np.eye(
            SIZES[-1], dtype=np.float32)[task.y_train]
    else:
        task = _mnist(config, QUICK_RUN["batch_size"])
        model, batch, labels = build_model("mnist", task, QUICK_RUN, backend), QUICK_RUN["batch_size"], task.y_train
    workspace = model.workspace(batch, backward=True)
    x, y = inputs.device_data(model, task.x_train, labels)
    return backend, model, workspace, backend.zeros(2, dtype=np.float64), x, y


def step_seconds(model: Any, workspace: Any, stats: Any, x: Any, y: Any, steps: int, warmup: int = 0) -> list[float]:
    """Seconds of each of ``steps`` training steps on one batch (``training_batch``'s), after ``warmup`` untimed
    steps (a thread count's or a kernel's first calls)."""
    for _ in range(warmup):
        model.train_step(x, y, workspace, stats)
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_step(x, y, workspace, stats)
        seconds.append(time.perf_counter() - started)
    return seconds


def profile_worker(mode: str, data_dir: str) -> None:
    """Print as JSON the median milliseconds of each part of the quick CNN's training step."""
    from xpnet.layers import Phase

    backend, model, workspace, stats, flat, y = training_batch("cnn", mode == "quick", data_dir)
    x = flat.reshape(len(flat), *model.input_shape)
    times: dict[str, list[float]] = {}

    def timed(part: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = work()
        times.setdefault(part, []).append(1e3 * (time.perf_counter() - started))
        return result

    for _ in range(3 + PROFILE_STEPS[mode == "quick"]):
        a = x
        for i, (layer, ws) in enumerate(zip(model.layers, workspace.layers, strict=True)):
            a = timed(f"{i} {layer.type_name} forward", lambda a=a, layer=layer, ws=ws: layer.forward(
                a, ws, Phase(True, model.step, 0)))
        timed("loss", lambda a=a: model.loss.gradient(backend.kernels, workspace.layers[-1].batch.get("z", a), a, y,
                                                        workspace.dy, stats))
        dy = workspace.dy
        for i in range(len(model.layers) - 1, -1, -1):
            layer = model.layers[i]
            dy = timed(f"{i} {layer.type_name} backward", lambda i=i, dy=dy, layer=layer: layer.backward(
                dy, workspace.layers[i], model.needs_input_gradient(i)))
        model.step += 1
        timed("optimizer update", lambda: model.optimizer.update(backend.kernels, model.buffer[0], model.buffer[1],
                                                                 model.buffer[2:], model.step))
    ms = {part: statistics.median(values[3:]) for part, values in times.items()}
    ms["whole step"] = sum(ms.values())
    print(json.dumps({"ms": ms}), flush=True)


if __name__ == "__main__":
    {"epoch": epoch_worker, "profile": profile_worker}[sys.argv[1]](*sys.argv[2:])
