"""The training loop: position, shuffling, batches, progress, NaN polling and the learning-rate schedule.

``Model.fit`` checks its arguments and hands them to a ``Trainer``; the model itself only computes a step. The
trainer is the one owner of the learning rate during a run (it sets it from the schedule before every step), and its
``TrainingPosition`` says where a run stands, so that a checkpoint can stop it after any step and resume it there.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet import governor
from xpnet.errors import ConfigError, TrainingError
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

    ``rng_state`` is the shuffling generator's state at the start of ``epoch``, so a resumed run draws the same
    batch order and skips the ``batch`` batches already done; ``loss_sum`` and ``correct`` are the epoch's running
    totals so far.
    """

    epoch: int = 0
    batch: int = 0
    rng_state: dict[str, Any] | None = None
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0

    def next_epoch(self) -> None:
        """Move to the start of the next epoch, with fresh running totals."""
        self.epoch += 1
        self.batch, self.rng_state, self.loss_sum, self.correct, self.seen = 0, None, 0.0, 0.0, 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingPosition:
        return cls(**data)


class ChunkedData(ABC):
    """Samples too many to hold at once, read one chunk at a time (for data sets larger than memory).

    The trainer loads one chunk onto the device, trains on it in batches, then reads the next; each epoch visits
    the chunks in a shuffled order and each chunk's rows in a shuffled order, both drawn from the model's
    shuffling generator, so a seeded run (and a resumed one) is reproducible.
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

    def __len__(self) -> int:
        return int(sum(self.chunk_lengths))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk in order."""
        return (self.chunk(index) for index in range(len(self.chunk_lengths)))


class Trainer:
    """Runs epochs of mini-batch steps of ``model`` over device-resident ``x`` (flat rows) and ``y``, or over
    ``x`` a ``ChunkedData`` (``y`` None) loaded onto the device one chunk at a time.

    ``x`` and ``y`` are the model's checked device arrays; ``validation`` is a pair of them, a ChunkedData, or None.
    The model's ``shuffle_rng`` draws each epoch's order (a checkpoint saves its state); ``model.position`` always
    says where training stands, and ``model.stop_training`` (set by a callback or a signal handler) stops after the
    current step, leaving the epoch open for a resume.

    With a ``communicator`` this is one rank of a data-parallel run: every rank draws the same order, steps on its
    equal share of each batch and averages the gradients (and non-trainable state) over the ranks before each
    update; the position and running totals stay global (a checkpoint reads the same at any rank count), and the
    ranks stop together, at the first loss read-back after any of them is asked to. Streamed data trains on one
    rank.
    """

    def __init__(
        self,
        model: Model,
        x: Any,
        y: Any,
        batch_size: int,
        *,
        validation: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        verbose: int = 1,
        callbacks: Sequence[Callback] = (),
        history: History | None = None,
        position: TrainingPosition | None = None,
        lr_schedule: Callable[[float], float] | None = None,
        communicator: Communicator | None = None,
    ) -> None:
        self.model, self.x, self.y, self.validation = model, x, y, validation
        self.n = len(x) if isinstance(x, ChunkedData) else x.shape[0]
        self.batch_size = min(batch_size, self.n)
        lengths = x.chunk_lengths if isinstance(x, ChunkedData) else [self.n]
        self.steps = sum(math.ceil(length / self.batch_size) for length in lengths)
        self.communicator = communicator
        self.rank, self.ranks = (0, 1) if communicator is None else (communicator.rank, communicator.size)
        self.reduce = None if communicator is None else self._reduce
        self.agreed_stop = False
        if communicator is not None and (isinstance(x, ChunkedData) or isinstance(validation, ChunkedData)):
            raise ConfigError("streamed (chunked) data trains on one rank: run it without a communicator")
        check_shares(self.n, self.batch_size, self.ranks)
        self.shuffle, self.verbose, self.callbacks, self.lr_schedule = shuffle, verbose, callbacks, lr_schedule
        self.history = history or History()
        self.position = position or TrainingPosition(epoch=len(self.history.epoch))
        if not 0 <= self.position.batch < self.steps or (self.position.batch and not self.position.seen):
            raise ConfigError(
                f"cannot resume at batch {self.position.batch} of an epoch of {self.steps} batches: the checkpoint "
                "was written for other data or another batch size; resume with the same data and settings"
            )
        backend = model.backend
        self.check_every = 1 if backend.name == "cpu" else 50
        """Steps between reads of the loss back to the host (each read waits for the device)."""
        self.stats = backend.zeros(2, dtype=np.float64)
        self.governor = governor.for_backend(backend)  # thread governor (xpnet.governor), fed each step's time
        self.regression = model.is_regression
        """A regression model reports no accuracy (validation: MSE and MAE)."""
        if communicator is not None:
            communicator.check_same(self._identity())
            communicator.attach(backend)

    def _identity(self) -> dict[str, Any]:
        """What every rank of a run must hold alike, for the check at its start."""
        model, host = self.model, self.model.backend.to_host
        parts = {"training data": host(self.x), "training targets": host(self.y),
                 "model": [model.backend.name, model.config(), self.batch_size, self.shuffle, self.position.to_dict(),
                           model.shuffle_rng.bit_generator.state],
                 "parameters and state": np.concatenate([host(model.buffer).ravel(), host(model.state)])}
        if self.validation is not None:
            parts["validation data"] = np.concatenate([host(a).ravel() for a in self.validation])
        return parts

    def _reduce(self, grads: Any) -> None:
        """The mean over ranks of the gradients and, when the model has any (BatchNorm), its running statistics."""
        self.communicator.allreduce_mean(grads)
        if self.model.state_count:
            self.communicator.allreduce_mean(self.model.state)

    def _stopping(self) -> bool:
        """Whether to stop after this step: the model's flag, or in a data-parallel run what the ranks agreed on."""
        return self.model.stop_training if self.communicator is None else self.agreed_stop

    def run(self, epochs: int) -> History:
        """Train until ``epochs`` epochs (counted from the run's start) are done or the model asks to stop."""
        model, position = self.model, self.position
        model.stop_training = False
        model.position, model.stream = position, self.rank
        self.workspace = model.workspace(self.batch_size // self.ranks, backward=True)
        while position.epoch < epochs and not self._stopping():
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
            position.next_epoch()
            for callback in self.callbacks:
                callback(model, position.epoch, logs)
            if self.communicator is not None:
                self.agreed_stop = model.stop_training = self.communicator.any(model.stop_training)
        return self.history

    def _epoch_rng(self) -> np.random.Generator:
        """The shuffling generator, at this epoch's saved state (drawn anew from it after a resume)."""
        position, rng = self.position, self.model.shuffle_rng
        if position.rng_state is None:
            position.rng_state = rng.bit_generator.state
        else:
            rng.bit_generator.state = position.rng_state
        return rng

    def _parts(self) -> Iterator[tuple[Any, Any, Any, int]]:
        """This epoch's parts as (x, y, row order or None, index of the part's first batch): the resident set as
        one part, or each chunk of streamed data in shuffled order (the chunks a resumed epoch has done unread)."""
        rng, backend = self._epoch_rng(), self.model.backend
        if not isinstance(self.x, ChunkedData):
            shuffled = self.shuffle and self.steps > 1
            yield self.x, self.y, backend.asarray(rng.permutation(self.n)) if shuffled else None, 0
            return
        lengths = self.x.chunk_lengths
        chunks = rng.permutation(len(lengths)) if self.shuffle else range(len(lengths))
        seeds = rng.integers(2**63, size=len(lengths))
        first = 0
        for index in chunks:
            batches = math.ceil(lengths[index] / self.batch_size)
            if self.position.batch < first + batches:
                x, y = self.model.device_data(*self.x.chunk(index), (f"chunk {index}", "its labels"))
                order = np.random.default_rng(seeds[index]).permutation(lengths[index]) if self.shuffle else None
                yield x, y, None if order is None else backend.asarray(order), first
            first += batches

    def _run_epoch(self, bar: EpochProgress) -> None:
        model, position, stats = self.model, self.position, self.stats
        gather = model.backend.kernels.gather_rows
        # the running totals are global: rank 0 carries those of the steps before, the others add theirs to zero
        stats[0], stats[1] = (position.loss_sum, position.correct) if self.rank == 0 else (0.0, 0.0)
        for x, y, order, first in self._parts():
            n = x.shape[0]
            end = first + math.ceil(n / self.batch_size)
            while position.batch < end and not self._stopping():
                start = (position.batch - first) * self.batch_size
                rows = min(n, start + self.batch_size) - start
                share = rows // self.ranks  # this rank's rows of the batch
                lo = start + self.rank * share
                hi = lo + share
                workspace = self.workspace.first(share)
                if order is None:
                    xb, yb = x[lo:hi], y[lo:hi]
                else:
                    xb, yb = workspace.x, workspace.y
                    gather(x, order[lo:hi], xb)
                    gather(y, order[lo:hi], yb)
                if self.lr_schedule is not None:
                    model.optimizer.lr = float(self.lr_schedule(position.epoch + position.batch / self.steps))
                tick = time.perf_counter()  # thread governor: this step's wall time
                model.train_step(xb, yb, workspace, stats, self.reduce)
                self.governor.step_done(time.perf_counter() - tick)
                position.batch += 1
                position.seen += rows
                if position.batch % self.check_every == 0 or position.batch == self.steps:
                    totals = model.backend.to_host(stats)
                    if self.communicator is not None:
                        totals = self.communicator.sum_host([*totals, model.stop_training])
                        self.agreed_stop = model.stop_training = bool(totals[2])
                    loss_sum, correct = float(totals[0]), float(totals[1])
                    self._check_finite(loss_sum)
                    position.loss_sum, position.correct = loss_sum, correct
                    accuracy = None if self.regression else correct / position.seen
                    bar.update(position.batch, loss_sum / position.seen, accuracy)
            if self._stopping():
                break

    def _epoch_logs(self, seconds: float) -> dict[str, float]:
        position = self.position
        logs = {"loss": position.loss_sum / position.seen}
        if not self.regression:
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
            start = optimizer.lr if self.lr_schedule is None else float(self.lr_schedule(0))
            raise TrainingError(
                f"the loss became {loss_sum} at epoch {position.epoch + 1}, step {position.batch} (optimizer "
                f"{optimizer.name}, learning rate {optimizer.lr:g} at this step, from {start:g}): training "
                "diverged; lower the learning rate",
                hint=f"try --lr {start / 10:g}",
            )


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
