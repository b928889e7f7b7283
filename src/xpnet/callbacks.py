"""Callbacks for ``Model.fit``: callables ``callback(model, epoch, logs)`` run after every epoch.

A callback stops the run Keras's way, ``model.stop_training = True``, which asks the running fit's trainer to stop
(its ``StopFlag``: the one stop request the Ctrl-C handler uses too); outside a fit there is nothing to stop.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from xpnet.errors import ConfigError

if TYPE_CHECKING:
    from xpnet.model import Model

MODES = ("auto", "min", "max")


class EarlyStopping:
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
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"patience must be a non-negative integer, got {patience!r}")
        if not (min_delta >= 0 and math.isfinite(min_delta)):
            raise ConfigError(f"min_delta must be a non-negative number, got {min_delta!r}")
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.mode = mode
        self._model: Model | None = None
        self._last_epoch = 0
        self._start()

    def _start(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.wait = 0
        self.best_parameters: np.ndarray | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def __call__(self, model: Model, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            validation = self.monitor.startswith("val_")
            hint = " (give fit validation_data or a validation_split)" if validation else ""
            raise ConfigError(
                f"EarlyStopping monitors {self.monitor!r}, which fit does not report{hint}; "
                f"available: {', '.join(sorted(logs))}"
            )
        if model is not self._model or epoch <= self._last_epoch:
            self._model = model
            self._start()
        self._last_epoch = epoch
        value = float(logs[self.monitor])
        if self._improved(value):
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
