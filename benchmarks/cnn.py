"""The plain convolutional network on MNIST (`xpnet train mnist --model cnn --recipe none`).

- Seconds per training epoch, xpnet (fused kernels) against PyTorch on the same device: the same layers, batch,
  optimizer and float32 data, interleaved epoch by epoch.
- Each convolution's forward + backward GFLOP/s at the training batch, against this machine's sgemm GFLOP/s
  (NumPy's float32 matmul on the same patch matrices).
- Accuracy: its default settings trained to the end, with the test accuracy after every epoch (target 99.4%); and
  a quick configuration of the same command's network (``QUICK_RUN``: 8 and 32 filters, batch 64, lr 5e-3, three
  epochs, no dropout or shifts), with the training seconds (evaluation excluded) until 99.0%: as one process, and
  as ``QUICK_RANKS`` data-parallel MPI ranks of one thread each (``mpiexec -n 2 python -m benchmarks.cnn DATA
  MODE``), which keep both cores busy where one process runs its elementwise kernels on one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.config import TORCH_DEVICES, Config, make_config
from benchmarks.distributed import mpi_job, mpi_missing
from benchmarks.peers import TorchPeer, torch_version
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet.layers import Conv2D, Phase
from xpnet.schedules import Cosine
from xpnet.tasks import TASK_DEFAULTS, build_model, sizes

SETTINGS = {**TASK_DEFAULTS["mnist"]["cnn"], "model": "cnn"}
"""The plain convolutional network (``xpnet train mnist --model cnn --recipe none``; without ``--recipe none`` the
command trains the ``cnn`` recipe), mirrored layer for layer by ``TorchCnn``."""
FULL_TARGET = 0.994
QUICK_RUN = {**SETTINGS, "filters": "8,32", "batch_size": 64, "dropout": 0.0, "lr": 5e-3, "epochs": 3, "shift": 0}
"""`xpnet train mnist --model cnn --recipe none --filters 8,32 --batch-size 64 --dropout 0 --lr 5e-3 --epochs 3
--shift 0`."""
QUICK_TARGET = 0.99
QUICK_SAMPLES = 1024
QUICK_RANKS = 2


class TorchCnn(TorchPeer):
    """The plain CNN in PyTorch (NCHW, its native layout), with the data resident on ``device``; ``settings`` as
    the CLI takes them (default: ``SETTINGS``; ``QUICK_RUN`` for the quick configuration)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, device: str, settings: dict[str, Any] = SETTINGS) -> None:
        import torch
        from torch import nn

        self.torch, self.device, self.batch = torch, device, settings["batch_size"]
        filters = sizes(settings["filters"], "filters")
        layers: list[Any] = []
        channels, side = 1, 28
        for count in filters:
            layers += [nn.Conv2d(channels, count, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels, side = count, side // 2
        dense, rate = int(settings["hidden"]), settings["dropout"]
        layers += [nn.Flatten(), nn.Dropout(rate), nn.Linear(channels * side * side, dense), nn.ReLU(),
                   nn.Dropout(rate), nn.Linear(dense, 10)]
        self.net = nn.Sequential(*layers).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=settings["lr"])
        self.x = torch.from_numpy(x.reshape(-1, 1, 28, 28)).to(device)
        self.y = torch.from_numpy(labels.astype(np.int64)).to(device)

def _xpnet_epoch(config: Config, device: str, task: Any) -> Candidate:
    backend = config.backend(device)
    model = build_model("mnist", task, SETTINGS, backend)
    x, y = backend.asarray(task.x_train), backend.asarray(task.y_train)
    return Candidate(lambda: model.fit(x, y, epochs=1, batch_size=SETTINGS["batch_size"], verbose=0),
                     backend.synchronize)


def epoch_rows(config: Config, task: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Seconds per epoch of xpnet and PyTorch on each device, and their ratio."""
    version = torch_version()
    candidates = {}
    for device in config.devices:
        candidates[f"xpnet ({device})"] = _xpnet_epoch(config, device, task)
        if version:
            peer = TorchCnn(task.x_train, task.y_train, TORCH_DEVICES[device])
            candidates[f"torch ({device})"] = Candidate(peer.epoch, peer.sync)
    samples = interleave(candidates, config.repeats, config.warmup)
    rows = []
    for device in config.devices:
        ours = Stats.of(samples[f"xpnet ({device})"])
        theirs = Stats.of(samples[f"torch ({device})"]) if version else None
        rows.append({"device": device, "xpnet_s_per_epoch": ours.median, "torch_s_per_epoch":
                     theirs.median if theirs else None, "ratio_to_torch": ours.median / theirs.median
                     if theirs else None, "runs": ours.runs})
        log(f"cnn: epoch {device}: {rows[-1]}")
    notes = [f"{len(task.y_train)} training samples; layers, batch {SETTINGS['batch_size']}, Adam lr "
             f"{SETTINGS['lr']}, dropout {SETTINGS['dropout']} and float32 as `xpnet train mnist --model cnn "
             "--recipe none`"]
    notes.append(f"PyTorch {version} (NCHW, its native layout)" if version else "PyTorch missing: no peer numbers")
    if SETTINGS["shift"]:
        notes.append(f"xpnet's network includes its RandomShift({SETTINGS['shift']}) augmentation; PyTorch's has none")
    return rows, notes


def _sgemm_gflops(config: Config, rows: int, inner: int, cols: int) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((rows, inner), dtype=np.float32), rng.random((inner, cols), dtype=np.float32)
    out = np.empty((rows, cols), np.float32)
    seconds = Stats.of(interleave({"sgemm": Candidate(lambda: np.matmul(a, b, out=out))}, config.repeats,
                                  config.warmup)["sgemm"]).median
    return 2 * rows * inner * cols / seconds / 1e9


def convolution_rows(config: Config, task: Any) -> list[dict[str, Any]]:
    """Forward + backward GFLOP/s of each convolution at the training batch, against sgemm on its patch matrix."""
    backend = config.backend("cpu")
    model = build_model("mnist", task, SETTINGS, backend)
    batch = SETTINGS["batch_size"]
    workspace = model.workspace(batch, backward=True)
    x = backend.asarray(task.x_train[:batch]).reshape(batch, *model.input_shape)
    activations, rows = [x], []
    for layer, ws in zip(model.layers, workspace.layers, strict=True):
        activations.append(layer.forward(activations[-1], ws, Phase(training=True)))
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, Conv2D):
            continue
        ws, inputs, need_dx = workspace.layers[i], activations[i], model.needs_input_gradient(i)
        dy = backend.empty(ws.batch["a"].shape)

        def step(layer: Conv2D = layer, ws: Any = ws, inputs: Any = inputs, need_dx: bool = need_dx,
                 dy: Any = dy) -> None:
            layer.forward(inputs, ws, Phase(training=True))
            dy[...] = 1e-3
            layer.backward(dy, ws, need_dx)

        seconds = Stats.of(interleave({"conv": Candidate(step)}, config.repeats, config.warmup)["conv"]).median
        patch_rows, fan_in = batch * math.prod(layer.conv_shape[:2]), layer.fan_in
        matmuls = 3 if need_dx else 2
        flops = 2 * patch_rows * fan_in * layer.units * matmuls
        sgemm = _sgemm_gflops(config, patch_rows, fan_in, layer.units)
        rows.append({"layer": i, "input": list(layer.input_shape), "output": list(layer.output_shape),
                     "patch_matrix": [patch_rows, fan_in], "matmuls": matmuls, "ms": 1e3 * seconds,
                     "gflops": flops / seconds / 1e9, "sgemm_gflops": sgemm,
                     "fraction_of_sgemm": flops / seconds / 1e9 / sgemm})
        log(f"cnn: conv layer {i}: {rows[-1]}")
    return rows


def accuracy_run(config: Config, task: Any, settings: dict[str, Any], target: float,
                 communicator: Any = None) -> dict[str, Any]:
    """``settings`` trained to the end on all training images (seed 0, cosine decay over the run; as one rank of
    a data-parallel job when ``communicator`` is given): the test accuracy after every epoch, and the training
    seconds until it first reached ``target``."""
    settings = dict(settings, epochs=1 if config.quick else settings["epochs"])
    model = build_model("mnist", task, settings, config.backend("cpu"))
    model.optimizer.schedule = Cosine(settings["epochs"])
    history = model.fit(task.x_train, task.y_train, settings["epochs"], settings["batch_size"],
                        validation_data=(task.x_test, task.y_test), seed=0, verbose=0, communicator=communicator)
    accuracy, seconds = history.history["val_accuracy"], np.cumsum(history.history["time"]).tolist()
    reached = next((i for i, a in enumerate(accuracy) if a >= target), None)
    changed = {key: value for key, value in settings.items() if SETTINGS.get(key) != value}
    return {"settings_beyond_the_cli_defaults": changed, "epochs": settings["epochs"], "test_accuracy": accuracy,
            "training_seconds": seconds, "final_test_accuracy": accuracy[-1], "target": target,
            "seconds_to_target": None if reached is None else seconds[reached],
            "epoch_reaching_target": None if reached is None else reached + 1}


def _task(config: Config) -> Any:
    """MNIST; in quick mode only its first ``QUICK_SAMPLES`` training images."""
    task = config.mnist()
    if config.quick:
        task.x_train, task.y_train = task.x_train[:QUICK_SAMPLES], task.y_train[:QUICK_SAMPLES]
    return task


def run(config: Config) -> dict[str, Any]:
    task = _task(config)
    started = time.perf_counter()
    rows, notes = epoch_rows(config, task)
    result = {"epochs": rows, "convolutions": convolution_rows(config, task), "notes": notes}
    result["accuracy"] = accuracy_run(config, task, SETTINGS, FULL_TARGET)
    log(f"cnn: accuracy {result['accuracy']}")
    result["quick_accuracy"] = accuracy_run(config, task, QUICK_RUN, QUICK_TARGET)
    log(f"cnn: quick configuration {result['quick_accuracy']}")
    missing = mpi_missing()
    result["quick_accuracy_ranks"] = {"ranks": QUICK_RANKS, "skipped": missing} if missing else mpi_job(
        QUICK_RANKS, "benchmarks.cnn", str(config.data_dir), "quick" if config.quick else "full")
    log(f"cnn: quick configuration, {QUICK_RANKS} ranks {result['quick_accuracy_ranks']}; "
        f"section {time.perf_counter() - started:.0f} s")
    if config.quick:
        notes.append(f"quick: {QUICK_SAMPLES} training samples, 1 epoch: the accuracy is not the CLI's")
    return result


def ranks_worker(data_dir: str, mode: str) -> None:
    """One rank of the quick configuration's data-parallel run; rank 0 prints its ``accuracy_run`` as JSON."""
    from xpnet.distributed import Communicator

    config = make_config(mode == "quick", Path(data_dir), "cpu")
    communicator = Communicator()
    result = accuracy_run(config, _task(config), QUICK_RUN, QUICK_TARGET, communicator)
    if communicator.rank == 0:
        print(json.dumps({"ranks": communicator.size, **result}), flush=True)


if __name__ == "__main__":
    ranks_worker(*sys.argv[1:])
