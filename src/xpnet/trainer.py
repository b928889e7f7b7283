"""The training loop: position, shuffling, batches, progress, NaN polling and stopping.

``Model.fit`` gathers its keywords into one ``FitOptions`` and hands them, with the data, to a ``Trainer``, which
owns everything about the run: its ``TrainingPosition`` (where the run stands, so that a checkpoint can stop it
after any step and resume it there), its own seeded shuffling generator (two models on one backend never share
one), its ``StopFlag`` (the one way to ask a run to stop: callbacks through ``model.stop_training``, the Ctrl-C
handler directly), the rank it trains as, and the loading of streamed chunks. The model only computes a step; its
optimizer turns the progress the trainer passes into the step's learning rate.
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet import governor, inputs
from xpnet.errors import ConfigError, TrainingError
from xpnet.graph_step import graph_setting, graph_step
from xpnet.progress import EpochProgress

if TYPE_CHECKING:
    from xpnet.distributed import Communicator
    from xpnet.model import Model

Callback = Callable[["Model", int, dict[str, float]], None]


@dataclass
class History:
    """Per-epoch metrics from ``fit``, Keras-style: ``history["loss"]``, ``["accuracy"]``, ``["val_loss"]``..."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls({k: [float(x) for x in v] for k, v in data["history"].items()}, [int(e) for e in data["epoch"]])


@dataclass
class TrainingPosition:
    """Where a training run stands: enough to stop after any step and resume exactly there.

    ``rng_state`` is the shuffling generator's state at the start of ``epoch`` (None before a fresh run's first
    epoch), so a resumed run draws the same batch order and skips the ``batch`` batches already done;
    ``loss_sum`` and ``correct`` are the epoch's running totals so far.
    """

    epoch: int = 0
    batch: int = 0
    rng_state: dict[str, Any] | None = None
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0

    def next_epoch(self, rng_state: dict[str, Any]) -> None:
        """Move to the start of the next epoch, whose order the generator at ``rng_state`` draws, with fresh
        running totals."""
        self.epoch += 1
        self.batch, self.rng_state, self.loss_sum, self.correct, self.seen = 0, rng_state, 0.0, 0.0, 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingPosition:
        return cls(**data)


class StopFlag:
    """A request to stop a run after its current step: set by a callback (``model.stop_training = True``), the
    Ctrl-C handler or any code holding the flag, read by the trainer after every step."""

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        self.requested = True

    def clear(self) -> None:
        self.requested = False


class ChunkedData(ABC):
    """Samples too many to hold at once, read one chunk at a time (for data sets larger than memory).

    The trainer loads one chunk onto the device, trains on it in batches, then reads the next; each epoch visits
    the chunks in a shuffled order and each chunk's rows in a shuffled order, both drawn from the trainer's
    shuffling generator, so a seeded run (and a resumed one) is reproducible. A rank of a data-parallel run loads
    only the rows of each chunk it trains on (``chunk_rows``).
    """

    @property
    @abstractmethod
    def chunk_lengths(self) -> Sequence[int]:
        """The number of samples in each chunk (none empty)."""

    @property
    @abstractmethod
    def features(self) -> int:
        """The width of a chunk's feature rows."""

    @abstractmethod
    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ``index`` as host arrays: feature rows (samples, features) and integer class labels."""

    def chunk_rows(self, index: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` (increasing positions in the chunk) of chunk ``index``, as ``chunk`` gives them: one rank's
        share of a data-parallel run. This reads the whole chunk; a source that can read only those rows (a memory
        map) overrides it."""
        x, y = self.chunk(index)
        return x[rows], y[rows]

    def __len__(self) -> int:
        return int(sum(self.chunk_lengths))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk in order."""
        return (self.chunk(index) for index in range(len(self.chunk_lengths)))


@dataclass
class FitOptions:
    """Everything ``fit`` takes besides the data (``Model.fit``'s keywords, which document each).

    ``seed`` fixes the shuffling order (None: drawn from the backend's seeded generator); ``history`` and
    ``position`` continue an earlier run, ``epochs`` counting from its start; ``stop`` is the flag that stops the
    run (a fresh one when None); ``communicator`` makes this one rank of a data-parallel run.
    """

    epochs: int = 1
    batch_size: int | None = 32
    validation_data: tuple[Any, Any] | ChunkedData | None = None
    validation_split: float = 0.0
    shuffle: bool = True
    seed: int | None = None
    verbose: int = 1
    callbacks: Sequence[Callback] = ()
    history: History | None = None
    position: TrainingPosition | None = None
    stop: StopFlag | None = None
    communicator: Communicator | None = None
    graph: bool | str = "auto"

    def check(self) -> None:
        """ConfigError naming the first option out of range."""
        epochs, batch_size = self.epochs, self.batch_size
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {epochs!r}")
        if self.validation_data is not None and self.validation_split:
            raise ConfigError("give validation_data or validation_split, not both")
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1), got {self.validation_split!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ConfigError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
        graph_setting(self.graph)


def training_data(model: Model, x: Any, y: Any, options: FitOptions) -> tuple[Any, Any, Any]:
    """The checked device arrays (or streamed data) to train and validate on: (x, y, validation), the last
    ``validation_split`` of the samples held out (before shuffling), like Keras."""
    if isinstance(x, ChunkedData):
        if y is not None or options.validation_split:
            raise ConfigError("streamed (chunked) data carries its labels: give y=None and no validation_split "
                              "(hold out a test set as validation_data instead)")
        x_all, y_all = x, None
    else:
        x_all, y_all = inputs.device_data(model, x, y)
    validation = options.validation_data
    if validation is not None:
        val_x, val_y = validation if isinstance(validation, tuple) else (validation, None)
        validation = val_x if isinstance(val_x, ChunkedData) else inputs.device_data(
            model, val_x, val_y, ("validation x", "validation y"))
    split = options.validation_split
    if split:
        n_val = int(round(x_all.shape[0] * split))
        if n_val < 1 or n_val >= x_all.shape[0]:
            raise ConfigError(f"validation_split {split} leaves no training or validation samples")
        validation = (x_all[-n_val:], y_all[-n_val:])
        x_all, y_all = x_all[:-n_val], y_all[:-n_val]
    return x_all, y_all, validation


class Trainer:
    """Runs epochs of mini-batch steps of ``model`` over ``x`` and ``y`` (checked by ``training_data``):
    device-resident flat rows and target rows, or ``x`` a ``ChunkedData`` (``y`` None) loaded onto the device one
    chunk at a time.

    The trainer's own shuffling generator draws each epoch's order: restored from ``options.position`` when it
    continues a run, else seeded by ``options.seed``, else by one draw from the backend's seeded generator. Its
    ``position`` always says where training stands, and its ``stop`` flag (which ``model.stop_training`` reads and
    writes while the model trains) stops after the current step, leaving the epoch open for a resume.

    With a ``communicator`` this is one rank of a data-parallel run: every rank draws the same order, steps on its
    equal share of each batch and averages the gradients (and non-trainable state) over the ranks before each
    update; the position and running totals stay global (a checkpoint reads the same at any rank count), and the
    ranks stop together, at the first loss read-back after any of them is asked to. Streamed data is split the same
    way, batch by batch within each chunk, and each rank reads only its rows of a chunk (``ChunkedData.chunk_rows``).
    """

    def __init__(self, model: Model, x: Any, y: Any, options: FitOptions) -> None:
        self.model, self.options = model, options
        self.x, self.y, self.validation = training_data(model, x, y, options)
        self.n = len(self.x) if isinstance(self.x, ChunkedData) else self.x.shape[0]
        self.batch_size = min(options.batch_size or self.n, self.n)
        lengths = self.x.chunk_lengths if isinstance(self.x, ChunkedData) else [self.n]
        self.steps = sum(math.ceil(length / self.batch_size) for length in lengths)
        communicator = self.communicator = options.communicator
        self.rank, self.ranks = (0, 1) if communicator is None else (communicator.rank, communicator.size)
        """This rank of a data-parallel run, and the rank count; each rank draws its own dropout masks."""
        self.reduce = None if communicator is None else self._reduce
        self.agreed_stop = False
        check_shares(self.n, self.batch_size, self.ranks)
        if isinstance(self.x, ChunkedData):
            check_chunk_shares(self.x.chunk_lengths, self.ranks)
        self.shuffle, self.verbose, self.callbacks = options.shuffle, options.verbose, options.callbacks
        self.history = options.history or History()
        self.position = options.position or TrainingPosition(epoch=len(self.history.epoch))
        if not 0 <= self.position.batch < self.steps or (self.position.batch and not self.position.seen):
            raise ConfigError(
                f"cannot resume at batch {self.position.batch} of an epoch of {self.steps} batches: the checkpoint "
                "was written for other data or another batch size; resume with the same data and settings"
            )
        self.stop = options.stop or StopFlag()
        backend = model.backend
        seed = options.seed
        if self.position.rng_state is None and seed is None:
            seed = int(backend.rng.integers(2**63))
        self.rng = np.random.default_rng(seed)
        """The shuffling generator; its state at each epoch's start is saved in ``position`` (and checkpoints)."""
        if self.position.rng_state is not None:
            self.rng.bit_generator.state = self.position.rng_state
        self.check_every = backend.readback_every
        """Steps between reads of the loss back to the host (each read waits for the device)."""
        self.stats = backend.zeros(2, dtype=np.float64)
        self.governor = governor.for_backend(backend)  # thread governor (xpnet.governor), fed each step's time
        self.regression = model.is_regression
        """A regression model reports no accuracy (validation: MSE and MAE)."""
        if communicator is not None:
            communicator.check_same(self._identity())
            communicator.attach(backend)
        self.graph, self.graph_status = graph_step(model, options.graph, self.batch_size,
                                                   isinstance(self.x, ChunkedData), communicator is not None)
        """The graph step (``xpnet.graph_step``) or None, and what results report of it ("on", "off (why)")."""

    def _identity(self) -> dict[str, Any]:
        """What every rank of a run must hold alike, for the check at its start."""
        model, host = self.model, self.model.backend.to_host
        parts = {"training data": _described(self.x, host), "training targets": _described(self.y, host),
                 "model": [model.backend.name, model.config(), self.batch_size, self.shuffle, self.position.to_dict(),
                           self.rng.bit_generator.state],
                 "parameters and state": np.concatenate([host(model.buffer).ravel(), host(model.state)])}
        if self.validation is not None:
            parts["validation data"] = (_described(self.validation, host) if isinstance(self.validation, ChunkedData)
                                        else np.concatenate([host(a).ravel() for a in self.validation]))
        return parts

    def _reduce(self, grads: Any) -> None:
        """The mean over ranks of the gradients and, when the model has any (BatchNorm), its running statistics."""
        self.communicator.allreduce_mean(grads)
        if self.model.state_count:
            self.communicator.allreduce_mean(self.model.state)

    def request_stop(self) -> None:
        """Stop after the current step (all ranks stop at the next loss read-back)."""
        self.stop.request()

    def _stopping(self) -> bool:
        """Whether to stop after this step: the stop flag, or in a data-parallel run what the ranks agreed on."""
        return self.stop.requested if self.communicator is None else self.agreed_stop

    def _agree_to_stop(self, requested: bool) -> None:
        """Record what the ranks agreed: any rank's request stops them all."""
        self.agreed_stop = requested
        if requested:
            self.stop.request()

    def run(self) -> History:
        """Train until ``options.epochs`` epochs (counted from the run's start) are done or a stop is requested.
        The trainer lets go of its data when it returns, so a model keeping it as its latest trainer holds only
        the position and the stop flag."""
        try:
            with self.graph.running() if self.graph is not None else contextlib.nullcontext():
                return self._run(self.options.epochs)
        finally:
            if self.graph is not None:
                self.graph_status = self.graph.status
            self.graph = None
            self.x = self.y = self.validation = self.workspace = None

    def _run(self, epochs: int) -> History:
        model, position = self.model, self.position
        self.stop.clear()
        self.workspace = model.workspace(self.batch_size // self.ranks, backward=True)
        while position.epoch < epochs and not self._stopping():
            if position.batch == 0:  # a fresh epoch (a resumed one was begun before the checkpoint)
                for callback in self.callbacks:
                    if hasattr(callback, "on_epoch_begin"):
                        callback.on_epoch_begin(model, position.epoch + 1)
            started = time.perf_counter()
            bar = EpochProgress(position.epoch + 1, epochs, self.steps, position.batch,
                                self.verbose > 0 and self.rank == 0)
            self._run_epoch(bar)
            if position.batch < self.steps:  # stopped early: the epoch stays open for a resume
                bar.close()
                break
            logs = self._epoch_logs(time.perf_counter() - started)
            bar.finish(logs)
            self.history.append(position.epoch + 1, logs)
            position.next_epoch(self.rng.bit_generator.state)
            for callback in self.callbacks:
                callback(model, position.epoch, logs)
            if self.communicator is not None:
                self._agree_to_stop(self.communicator.any(self.stop.requested))
        return self.history

    def _epoch_rng(self) -> np.random.Generator:
        """The shuffling generator, at this epoch's saved state (drawn anew from it after a resume)."""
        position, rng = self.position, self.rng
        if position.rng_state is None:
            position.rng_state = rng.bit_generator.state
        else:
            rng.bit_generator.state = position.rng_state
        return rng

    def _parts(self) -> Iterator[tuple[Any, Any, Any, int, int]]:
        """This epoch's parts as (x, y, row order or None, index of the part's first batch, its sample count): the
        resident set as one part, or each chunk of streamed data in shuffled order (the chunks a resumed epoch has
        done unread); of a chunk, a rank of several loads only the rows it trains on (``_rank_rows``)."""
        rng, backend = self._epoch_rng(), self.model.backend
        if not isinstance(self.x, ChunkedData):
            shuffled = self.shuffle and self.steps > 1
            yield self.x, self.y, backend.asarray(rng.permutation(self.n)) if shuffled else None, 0, self.n
            return
        lengths = self.x.chunk_lengths
        chunks = rng.permutation(len(lengths)) if self.shuffle else range(len(lengths))
        seeds = rng.integers(2**63, size=len(lengths))
        first = 0
        for index in chunks:
            n = lengths[index]
            batches = math.ceil(n / self.batch_size)
            if self.position.batch < first + batches:
                order = np.random.default_rng(seeds[index]).permutation(n) if self.shuffle else None
                if self.ranks == 1:
                    host = self.x.chunk(index)
                else:
                    rows, order = self._rank_rows(n, np.arange(n) if order is None else order)
                    host = self.x.chunk_rows(index, rows)
                x, y = inputs.device_data(self.model, *host, (f"chunk {index}", "its labels"))
                yield x, y, None if order is None else backend.asarray(order), first, n
            first += batches

    def _rank_rows(self, n: int, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of a chunk of ``n`` samples in ``order`` that this rank trains on (its share of each batch, as
        ``_run_epoch`` takes it), increasing, and the order rewritten to point into those rows alone (the places
        other ranks train on point at row 0, never read here)."""
        starts = np.arange(0, n, self.batch_size)
        shares = (np.minimum(n, starts + self.batch_size) - starts) // self.ranks
        mine = np.concatenate([np.arange(lo, lo + share) for lo, share in
                               zip(starts + self.rank * shares, shares, strict=True)])
        rows = np.sort(order[mine])
        local = np.zeros(n, dtype=np.int64)
        local[mine] = np.searchsorted(rows, order[mine])
        return rows, local

    def _run_epoch(self, bar: EpochProgress) -> None:
        model, position, stats = self.model, self.position, self.stats
        # the running totals are global: rank 0 carries those of the steps before, the others add theirs to zero
        stats[0], stats[1] = (position.loss_sum, position.correct) if self.rank == 0 else (0.0, 0.0)
        for x, y, order, first, n in self._parts():
            end = first + math.ceil(n / self.batch_size)
            while position.batch < end and not self._stopping():
                start = (position.batch - first) * self.batch_size
                rows = min(n, start + self.batch_size) - start
                share = rows // self.ranks  # this rank's rows of the batch
                lo = start + self.rank * share
                hi = lo + share
                workspace = self.workspace.first(share)
                progress = self._progress()
                tick = time.perf_counter()  # thread governor: this step's wall time
                if self.graph is None or not self.graph.step(x, y, order, lo, hi, workspace, stats, progress):
                    self._eager_step(x, y, order, lo, hi, workspace, progress)
                self.governor.step_done(time.perf_counter() - tick)
                position.batch += 1
                position.seen += rows
                if position.batch % self.check_every == 0 or position.batch == self.steps:
                    totals = model.backend.to_host(stats)
                    if self.communicator is not None:
                        totals = self.communicator.sum_host([*totals, self.stop.requested])
                        self._agree_to_stop(bool(totals[2]))
                    loss_sum, correct = float(totals[0]), float(totals[1])
                    self._check_finite(loss_sum)
                    position.loss_sum, position.correct = loss_sum, correct
                    accuracy = None if self.regression else correct / position.seen
                    bar.update(position.batch, loss_sum / position.seen, accuracy)
            if self._stopping():
                break

    def _eager_step(self, x: Any, y: Any, order: Any, lo: int, hi: int, workspace: Any, progress: float) -> None:
        """One step on rows ``order[lo:hi]`` (``lo:hi`` when ``order`` is None) of ``x``, ``y``, launched eagerly."""
        if order is None:
            xb, yb = x[lo:hi], y[lo:hi]
        else:
            xb, yb = workspace.x, workspace.y
            gather = self.model.backend.kernels.gather_rows
            gather(x, order[lo:hi], xb)
            gather(y, order[lo:hi], yb)
        self.model.train_step(xb, yb, workspace, self.stats, self.reduce, progress=progress, stream=self.rank)

    def _progress(self, batch: int | None = None) -> float:
        """Epochs done before step ``batch`` of this epoch (default: the next), as the optimizer's schedule reads
        them: fractional, so a decay is smooth even over one epoch."""
        position = self.position
        return position.epoch + (position.batch if batch is None else batch) / self.steps

    def _epoch_logs(self, seconds: float) -> dict[str, float]:
        position = self.position
        logs = {"loss": position.loss_sum / position.seen}
        if "accuracy" in self.model.metrics:  # the training metrics a step counts (the others: validation only)
            logs["accuracy"] = position.correct / position.seen
        logs["time"] = seconds
        if self.validation is not None:
            val = (self.model.evaluate(self.validation, None) if isinstance(self.validation, ChunkedData)
                   else self.model.evaluate_on_device(*self.validation))
            logs.update({f"val_{name}": value for name, value in val.items()})
        return logs

    def _check_finite(self, loss_sum: float) -> None:
        if not math.isfinite(loss_sum):
            optimizer, position = self.model.optimizer, self.position
            start, now = optimizer.rate(0.0), optimizer.rate(self._progress(position.batch - 1))
            raise TrainingError(
                f"the loss became {loss_sum} at epoch {position.epoch + 1}, step {position.batch} (optimizer "
                f"{optimizer.name}, learning rate {now:g} at this step, from {start:g}): training "
                "diverged; lower the learning rate",
                hint=f"try --lr {start / 10:g}",
            )


def _described(data: Any, host: Callable[[Any], np.ndarray]) -> Any:
    """Resident data as a host array, or streamed data as its chunk lengths and width (reading every chunk on every
    rank only to compare them would cost a whole epoch; its labels ride in its chunks: no targets, None), for the
    ranks' check at start."""
    if data is None or isinstance(data, ChunkedData):
        return None if data is None else [list(data.chunk_lengths), data.features]
    return host(data)


def check_chunk_shares(lengths: Sequence[int], ranks: int) -> None:
    """ConfigError unless every chunk of streamed data of ``lengths`` holds a multiple of ``ranks`` samples, so that
    every batch within it (the last, shorter one too) splits into equal shares."""
    for index, length in enumerate(lengths):
        if length % ranks:
            raise ConfigError(
                f"chunk {index} of the streamed training data holds {length} samples, which {ranks} ranks cannot "
                f"share equally: read chunks of a multiple of {ranks} samples (--max-in-memory)",
                hint=f"try --max-in-memory {max(ranks, length // ranks * ranks)}")


def check_shares(n: int, batch_size: int, ranks: int) -> None:
    """ConfigError unless ``ranks`` ranks can take equal shares of every batch of ``batch_size`` of ``n`` rows:
    both must be multiples of the rank count (then so is the last, shorter batch)."""
    if n % ranks:
        divisors = [k for k in range(2, ranks) if n % k == 0]
        raise ConfigError(
            f"the {n} training samples cannot be shared equally by {ranks} ranks: run a rank count that divides {n}"
            + (f" (such as {divisors[-1]})" if divisors else "") + ", or drop samples"
        )
    if batch_size % ranks:
        nearest = max(ranks, round(batch_size / ranks) * ranks)
        raise ConfigError(f"batches of {batch_size} samples cannot be shared equally by {ranks} ranks: the global "
                          "batch size must be a multiple of the rank count", hint=f"try --batch-size {nearest}")
