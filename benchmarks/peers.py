"""MNIST training epochs of 784-256-128-10 (batch 128, Adam, float32): xpnet fused, xpnet reference and PyTorch.

All run on the same data, on the same device, one epoch each in turn (round-robin), so machine load drifts over
all of them alike. PyTorch is optional: without it the peer is reported missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.config import TORCH_DEVICES, Config
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet.builders import mlp

SIZES = [784, 256, 128, 10]
BATCH = 128
LR = 1e-3
QUICK_SAMPLES = 1024


class TorchPeer:
    """The same MLP, loss and optimizer in PyTorch, with the data resident on ``device`` ("cpu" or "cuda")."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, device: str) -> None:
        import torch

        self.torch, self.device = torch, device
        layers: list[Any] = []
        for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers[:-1]).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=LR)
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(labels).to(device)

    batch = BATCH

    def epoch(self) -> None:
        torch = self.torch
        self.net.train()
        order = torch.randperm(len(self.x), device=self.device)
        for lo in range(0, len(order), self.batch):
            rows = order[lo : lo + self.batch]
            loss = torch.nn.functional.cross_entropy(self.net(self.x[rows]), self.y[rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()


class TorchGraphPeer(TorchPeer):
    """``TorchPeer`` with each training step captured once as a CUDA graph and replayed: the batch is gathered
    into static buffers before each replay. Adam runs with ``capturable=True`` (its step count on the device).
    The epoch replays full batches only: the last, short batch (96 of MNIST's 60,000 at batch 128) is dropped."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, device: str) -> None:
        super().__init__(x, labels, device)
        torch = self.torch
        if device != "cuda" or not torch.cuda.is_available():
            raise RuntimeError("CUDA graphs need PyTorch with a CUDA device (torch.cuda.is_available() is False)")
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=LR, capturable=True)
        self.static_x, self.static_y = self.x[: self.batch].clone(), self.y[: self.batch].clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up steps on a side stream, as PyTorch's capture recipe asks
            for _ in range(3):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self._step(zero_grad=False)

    def _step(self, zero_grad: bool = True) -> None:
        loss = self.torch.nn.functional.cross_entropy(self.net(self.static_x), self.static_y)
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def epoch(self) -> None:
        order = self.torch.randperm(len(self.x), device=self.device)
        for lo in range(0, len(order) - self.batch + 1, self.batch):
            rows = order[lo : lo + self.batch]
            self.static_x.copy_(self.x[rows])
            self.static_y.copy_(self.y[rows])
            self.graph.replay()


def torch_version() -> str | None:
    """PyTorch's version, set up to use every core; None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch.__version__


def xpnet_epoch(config: Config, device: str, mode: str, x: np.ndarray, y: np.ndarray,
                graph: str = "auto") -> Candidate:
    """One epoch of the MLP with ``mode`` kernels on ``device``, the data resident there; ``graph`` as ``fit``'s
    (auto: the step recorded and replayed where the kernels allow, as a user's run does)."""
    backend = config.backend(device, mode)
    model = mlp(SIZES, optimizer="adam", lr=LR, backend=backend)
    x_dev, y_dev = backend.asarray(x), backend.asarray(y)
    return Candidate(lambda: model.fit(x_dev, y_dev, epochs=1, batch_size=BATCH, verbose=0, graph=graph),
                     backend.synchronize)


def _step_products(backend: Any, rows: int, rng: np.random.Generator) -> list[tuple[Any, Any, Any]]:
    """The MLP step's 8 matrix products for a batch of ``rows``, in the order a step runs them, as (left, right,
    out) on random data in preallocated buffers: each layer's forward product, then from the last layer down its
    weight gradient and (all but the first layer) its input gradient."""
    xp = backend.xp
    forward, backward = [], []
    for fan_in, units in zip(SIZES[:-1], SIZES[1:], strict=True):
        a, w, dz = (backend.asarray(rng.standard_normal(shape).astype(np.float32))
                    for shape in ((rows, fan_in), (fan_in, units), (rows, units)))
        out, dw, da = (xp.empty(shape, np.float32) for shape in ((rows, units), (fan_in, units), (rows, fan_in)))
        forward.append((a, w, out))
        layer = [(a.T, dz, dw)]
        if fan_in != SIZES[0]:  # the first layer's input needs no gradient
            layer.append((dz, w.T, da))
        backward.insert(0, layer)
    return forward + [product for layer in backward for product in layer]


def _batches(samples: int) -> list[int]:
    """The batch sizes of an epoch over ``samples``: full batches, then the remainder."""
    return [BATCH] * (samples // BATCH) + ([samples % BATCH] if samples % BATCH else [])


def gemm_bound_epoch(config: Config, device: str, samples: int) -> Candidate:
    """The matrix products alone of one epoch of the MLP's training steps, each product run for every batch in a
    row (its operands stay in cache). No implementation of this step on this BLAS can take less; an epoch's time
    over it says what the rest costs."""
    backend = config.backend(device, "fused")
    xp, rng, batches = backend.xp, np.random.default_rng(0), _batches(samples)
    runs = [(batches.count(rows), product) for rows in sorted(set(batches))
            for product in _step_products(backend, rows, rng)]

    def epoch() -> None:
        for count, (left, right, out) in runs:
            for _ in range(count):
                xp.matmul(left, right, out=out)

    return Candidate(epoch, backend.synchronize)


def _adam_pass(backend: Any) -> Callable[[int], None]:
    """One Adam update of the MLP's flat parameter, gradient and moment buffers (fixed random gradients), as a
    function of the step number."""
    model = mlp(SIZES, optimizer="adam", lr=LR, backend=backend)
    params, grads, moments = model.buffer[0], model.buffer[1], model.buffer[2:]
    grads[...] = backend.asarray(np.random.default_rng(0).standard_normal(grads.shape).astype(np.float32) * 1e-3)

    def update(step: int) -> None:
        model.optimizer.update(backend.kernels, params, grads, moments, step, 0.0, model.decay_targets)

    return update


def step_floor_epoch(config: Config, device: str, samples: int) -> Candidate:
    """The products and the Adam pass of every step, in a step's order: per batch the 8 products, then one update
    of the flat parameters. What a step that updates after its products cannot go below, with each product's
    operands as cold as a step leaves them, and the update reading moments the products pushed out of cache."""
    backend = config.backend(device, "fused")
    xp, rng, batches = backend.xp, np.random.default_rng(0), _batches(samples)
    steps = {rows: _step_products(backend, rows, rng) for rows in set(batches)}
    order = [steps[rows] for rows in batches]
    update = _adam_pass(backend)

    def epoch() -> None:
        for step, products in enumerate(order, 1):
            for left, right, out in products:
                xp.matmul(left, right, out=out)
            update(step)

    return Candidate(epoch, backend.synchronize)


def optimizer_epoch(config: Config, device: str, samples: int) -> Candidate:
    """The Adam updates alone of one epoch of the MLP: one fused pass over the flat parameter, gradient and moment
    buffers per batch. Together with the products alone, what any step that updates after its backward pass costs."""
    backend = config.backend(device, "fused")
    update, steps = _adam_pass(backend), len(_batches(samples))

    def epoch() -> None:
        for step in range(1, steps + 1):
            update(step)

    return Candidate(epoch, backend.synchronize)


def run(config: Config) -> dict[str, Any]:
    """Seconds per epoch of each implementation on each device, and their ratios to xpnet fused."""
    task = config.mnist()
    x, labels = task.x_train, task.y_train
    if config.quick:
        x, labels = x[:QUICK_SAMPLES], labels[:QUICK_SAMPLES]
    one_hot = np.eye(SIZES[-1], dtype=np.float32)[labels]
    version = torch_version()
    candidates = {}
    for device in config.devices:
        for mode in ("fused", "reference"):
            candidates[f"xpnet {mode} ({device})"] = xpnet_epoch(config, device, mode, x, one_hot)
        candidates[f"matrix products alone ({device})"] = gemm_bound_epoch(config, device, len(x))
        candidates[f"Adam updates alone ({device})"] = optimizer_epoch(config, device, len(x))
        candidates[f"products and Adam in step order ({device})"] = step_floor_epoch(config, device, len(x))
        if version:
            peer = TorchPeer(x, labels.astype(np.int64), TORCH_DEVICES[device])
            candidates[f"torch ({device})"] = Candidate(peer.epoch, peer.sync)
    log(f"peers: {len(candidates)} candidates x {config.warmup} warm-up + {config.repeats} epochs, interleaved")
    samples = interleave(candidates, config.repeats, config.warmup)
    rows = []
    for name, times in samples.items():
        stats = Stats.of(times)
        device = name.rsplit("(", 1)[1].rstrip(")")
        fused = Stats.of(samples[f"xpnet fused ({device})"]).median
        rows.append({"implementation": name, "s_per_epoch": stats.median, "min_s": stats.min, "max_s": stats.max,
                     "runs": stats.runs, "ratio_to_xpnet_fused": stats.median / fused})
        log(f"peers: {name}: {stats.median:.2f} s/epoch")
    notes = ["matrix products alone: the step's 8 products (3 forward, 3 weight gradients, 2 input gradients) "
             "for every batch of an epoch, nothing else: the bound no implementation on this BLAS can beat",
             "Adam updates alone: the optimizer's pass over the 235,146 parameters for every batch of an epoch",
             "products and Adam in step order: per batch the 8 products as a step orders them, then the Adam pass: "
             "the floor of any step that updates after its products, with the caches as a step leaves them",
             f"{len(x)} training samples, batch {BATCH}, {'-'.join(map(str, SIZES))}, Adam lr {LR}, float32; "
             "same data on the same device, each implementation shuffles its own batch order"]
    if version:
        notes.append(f"PyTorch {version}, torch.set_num_threads({os.cpu_count()}), default Adam and Linear init")
    else:
        rows += [{"implementation": f"torch ({device})", "s_per_epoch": None} for device in config.devices]
        notes.append("PyTorch missing (not importable): no peer numbers")
    return {"rows": rows, "torch": version, "notes": notes}
