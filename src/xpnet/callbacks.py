"""Callbacks for ``Model.fit``, Keras's set: callables ``callback(model, epoch, logs)`` run after every epoch.

``epoch`` is the number of the epoch just done, from 1 (as ``History.epoch`` counts), and ``logs`` its figures
(``loss``, ``accuracy``, ``val_loss``...). A callback with an ``on_epoch_begin(model, epoch)`` method also hears,
before each epoch it starts afresh (not one a resumed run re-enters), that epoch's number. A callback stops the run
Keras's way, ``model.stop_training = True``, which asks the running fit's trainer to stop (its ``StopFlag``: the
one stop request the Ctrl-C handler uses too); outside a fit there is nothing to stop. The learning rate is the
optimizer's (``xpnet.optimizers``): callbacks that change it ask ``model.optimizer.set_rate``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.checks import is_finite_number
from xpnet.errors import ConfigError
from xpnet.fileio import atomic_write

if TYPE_CHECKING:
    from xpnet.model import Model

MODES = ("auto", "min", "max")


class Monitor:
    """A watched figure of the logs: whether lower ("min") or higher ("max") is better ("auto": "max" for
    accuracies, "min" for everything else), by more than ``min_delta``; ``best`` the best value so far."""

    def __init__(self, monitor: str, min_delta: float, mode: str) -> None:
        if not (is_finite_number(min_delta) and min_delta >= 0):
            raise ConfigError(f"min_delta must be a non-negative number, got {min_delta!r}")
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.min_delta, self.mode = monitor, min_delta, mode
        self.best = self.worst

    @property
    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def value(self, logs: dict[str, float]) -> float:
        """The monitored figure of ``logs``; ConfigError naming what fit does report when it is not there."""
        if self.monitor not in logs:
            validation = self.monitor.startswith("val_")
            hint = " (give fit validation_data or a validation_split)" if validation else ""
            raise ConfigError(
                f"{type(self).__name__} monitors {self.monitor!r}, which fit does not report{hint}; "
                f"available: {', '.join(sorted(logs))}"
            )
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class RunTracker:
    """Tells when a callback serves a new run: another model, or epochs that start again (a new ``fit``)."""

    def __init__(self) -> None:
        self._model: Model | None = None
        self._last_epoch = 0

    def new_run(self, model: Model, epoch: int) -> bool:
        """Record ``epoch`` of ``model``; True when it starts a run this callback has not served yet."""
        new = model is not self._model or epoch <= self._last_epoch
        self._model, self._last_epoch = model, epoch
        return new


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{what} must be a non-negative integer, got {value!r}")
    return value


class EarlyStopping(Monitor):
    """Stop training once ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` says whether lower ("min") or higher ("max") is better; "auto" takes "max" for accuracies and
    "min" for everything else. With ``restore_best``, stopping also puts back the parameters of the best
    epoch. After ``fit`` returns, ``best``, ``best_epoch`` and ``stopped_epoch`` (0 if it never stopped) say
    what happened. One instance can serve several ``fit`` calls: it starts afresh on a new model or when the
    epochs restart.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best: bool = True,
        mode: str = "auto",
    ) -> None:
        self.patience = _count(patience, "patience")
        super().__init__(monitor, min_delta, mode)
        self.restore_best = restore_best
        self._run = RunTracker()
        self._start()

    def _start(self) -> None:
        self.best = self.worst
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.wait = 0
        self.best_parameters: np.ndarray | None = None

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        value = self.value(logs)
        if self._run.new_run(model, epoch):
            self._start()
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_parameters = model.get_parameters()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            model.stop_training = True
            if self.restore_best and self.best_parameters is not None:
                model.set_parameters(self.best_parameters)


class ModelCheckpoint(Monitor):
    """Save the model after every epoch to ``filepath`` (atomically, as ``Model.save``), which may name the epoch
    and any figure of the logs: ``"model-{epoch:02d}-{val_loss:.3f}.npz"``. With ``save_best_only``, only when
    ``monitor`` improved (``mode`` and ``min_delta`` as EarlyStopping's). ``include_optimizer`` keeps the
    optimizer's moments. A saved file loads with ``xpnet.load_model`` and works with ``xpnet predict``,
    ``evaluate`` and ``info`` when the model has what they need (see ``Model.save``). ``saved`` lists the paths."""

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        min_delta: float = 0.0,
        include_optimizer: bool = True,
    ) -> None:
        super().__init__(monitor, min_delta, mode)
        self.filepath, self.save_best_only, self.include_optimizer = str(filepath), save_best_only, include_optimizer
        self.saved: list[Path] = []
        self._run = RunTracker()

    def path(self, epoch: int, logs: dict[str, float]) -> str:
        """``filepath`` with the epoch and the logs' figures filled in; ConfigError for a name the logs lack."""
        try:
            return self.filepath.format(epoch=epoch, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"ModelCheckpoint path {self.filepath!r} cannot be filled in ({exc!r}); it may name "
                              f"{{epoch}} and {', '.join(f'{{{key}}}' for key in sorted(logs))}") from None

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        path = self.path(epoch, logs)
        if self._run.new_run(model, epoch):
            self.best = self.worst
        if self.save_best_only:
            value = self.value(logs)
            if not self.improved(value):
                return
            self.best = value
        self.saved.append(model.save(path, include_optimizer=self.include_optimizer))


class CSVLogger:
    """Append each epoch's figures to the CSV file ``filename`` as one row (``epoch`` from 1, then the logs'
    figures; ``separator`` between), written in one call and synced, so a crash loses at most the row being
    written. The header is written when the run starts: the file is replaced (atomically), or with ``append`` it
    is kept and continued. Continuing a resumed run drops the rows of the epochs it trains again (those from its
    first epoch on), so the file always holds one row per epoch; its columns must be the run's."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ConfigError(f"the CSV separator must be one character (not a quote or newline), got {separator!r}")
        self.path, self.separator, self.append = Path(filename), separator, append
        self.columns: list[str] | None = None
        self._run = RunTracker()

    def _start(self, epoch: int, columns: list[str]) -> None:
        """Write the header, and with ``append`` the rows of the epochs before ``epoch`` already in the file."""
        header = self.separator.join(columns)
        kept: list[str] = []
        if self.append and self.path.is_file() and self.path.stat().st_size:
            lines = self.path.read_text().splitlines()
            if lines[0] != header:
                raise ConfigError(f"{self.path}: its columns ({lines[0]}) are not this run's ({header}); log to "
                                  "another file, or start it afresh (append=False)")
            for line in lines[1:]:
                first = line.split(self.separator, 1)[0]
                if first.isdigit() and int(first) < epoch:
                    kept.append(line)
        with atomic_write(self.path, "w") as handle:
            handle.write("".join(f"{line}\n" for line in [header, *kept]))
        self.columns = columns

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        columns = ["epoch", *logs]
        if self._run.new_run(model, epoch):
            self._start(epoch, columns)
        elif columns != self.columns:
            raise ConfigError(f"{self.path}: epoch {epoch} reports {', '.join(logs)}, not the columns of the "
                              f"header ({', '.join(self.columns or [])})")
        row = self.separator.join([str(epoch), *(repr(float(value)) for value in logs.values())]) + "\n"
        with open(self.path, "a") as handle:
            handle.write(row)
            handle.flush()
            os.fsync(handle.fileno())


class LearningRateScheduler:
    """Set the learning rate of each epoch, Keras's way: ``schedule(epoch, lr)`` gets the epoch about to run
    (from 0, as Keras counts) and the current rate, and returns the rate for that epoch, which the optimizer
    takes (``set_rate``) and keeps, so that a checkpoint saves it and a resumed epoch is not scheduled twice. An
    optimizer that has a schedule of its own (``Adam(schedule=Cosine(10))``) already sets its rates: give one or
    the other. ``verbose`` prints each change."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        if not callable(schedule):
            raise ConfigError(f"LearningRateScheduler needs a function schedule(epoch, lr) -> lr, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, model: Model, epoch: int) -> None:
        optimizer = model.optimizer
        if optimizer.schedule is not None:
            raise ConfigError(f"LearningRateScheduler and the optimizer's own schedule ({optimizer.describe()}) "
                              "would both set the rate: drop one (e.g. Adam(lr) without schedule=)")
        rate = self.schedule(epoch - 1, optimizer.lr)
        rate = rate.item() if isinstance(rate, np.generic) else rate  # a NumPy scalar is a number too
        if not (is_finite_number(rate) and rate > 0):
            raise ConfigError(f"the learning-rate schedule gave {rate!r} for epoch {epoch - 1}; it must return a "
                              "positive number")
        if rate != optimizer.lr and self.verbose:
            print(f"epoch {epoch}: learning rate {rate:g}")
        optimizer.set_rate(rate)

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        """Nothing after an epoch: the rate is set before each."""


class ReduceLROnPlateau(Monitor):
    """Cut the learning rate by ``factor`` once ``monitor`` has not improved (by more than ``min_delta``) for
    ``patience`` epochs, then wait ``cooldown`` epochs before watching again; never below ``min_lr``. The cut
    goes through the optimizer (``set_rate`` on its base rate), so a schedule the optimizer has keeps its shape
    at the lower level, and a checkpoint saves the cut rate. ``verbose`` prints each cut."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "auto",
        verbose: int = 0,
    ) -> None:
        if not (is_finite_number(factor) and 0 < factor < 1):
            raise ConfigError(f"factor must be a number between 0 and 1 (the rate is multiplied by it), got "
                              f"{factor!r}")
        if not (is_finite_number(min_lr) and min_lr >= 0):
            raise ConfigError(f"min_lr must be a non-negative number, got {min_lr!r}")
        super().__init__(monitor, min_delta, mode)
        self.factor, self.min_lr, self.verbose = factor, min_lr, verbose
        self.patience, self.cooldown = _count(patience, "patience"), _count(cooldown, "cooldown")
        self._run = RunTracker()
        self.wait = self.cooling = 0

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        value = self.value(logs)
        if self._run.new_run(model, epoch):
            self.best, self.wait, self.cooling = self.worst, 0, 0
        if self.cooling:
            self.cooling -= 1
            self.wait = 0
        if self.improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        optimizer = model.optimizer
        if self.wait >= self.patience and optimizer.lr > self.min_lr and not self.cooling:
            rate = max(optimizer.lr * self.factor, self.min_lr)
            if rate <= 0:  # min_lr 0 and a rate that underflows: keep the last positive one
                return
            optimizer.set_rate(rate)
            if self.verbose:
                print(f"epoch {epoch}: {self.monitor} has not improved for {self.wait} epochs; learning rate "
                      f"{rate:g}")
            self.wait, self.cooling = 0, self.cooldown


class LambdaCallback:
    """A callback from plain functions, Keras's way: ``on_epoch_end(epoch, logs)`` after each epoch and
    ``on_epoch_begin(epoch)`` before each (``epoch`` from 1, as ``History.epoch`` counts); either may be left
    out. ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))``."""

    def __init__(self, on_epoch_end: Callable[[int, dict[str, float]], Any] | None = None,
                 on_epoch_begin: Callable[[int], Any] | None = None) -> None:
        for name, function in (("on_epoch_end", on_epoch_end), ("on_epoch_begin", on_epoch_begin)):
            if function is not None and not callable(function):
                raise ConfigError(f"LambdaCallback {name} must be a function, got {function!r}")
        self.end, self.begin = on_epoch_end, on_epoch_begin

    def on_epoch_begin(self, model: Model, epoch: int) -> None:
        if self.begin is not None:
            self.begin(epoch)

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        if self.end is not None:
            self.end(epoch, logs)
