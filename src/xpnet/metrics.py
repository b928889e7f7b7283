"""The metrics ``evaluate`` and ``fit`` report beside the loss, chosen Keras-style by name (``metrics=[...]``).

A classifier reports its accuracy by default and a regression model its mean squared and mean absolute errors;
``Model.compile(metrics=[...])`` picks others. The errors compare the outputs with the target rows (one-hot rows for
class labels), averaged over samples and outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xpnet.errors import ConfigError

ALIASES = {"accuracy": "accuracy", "acc": "accuracy", "mse": "mse", "mean_squared_error": "mse", "mae": "mae",
           "mean_absolute_error": "mae"}
"""Every accepted metric name and the name it is reported under."""


def default_metrics(regression: bool) -> tuple[str, ...]:
    """What a model reports when no metrics were chosen: ("mse", "mae") for regression, else ("accuracy",)."""
    return ("mse", "mae") if regression else ("accuracy",)


def get_metrics(metrics: Sequence[Any] | None, regression: bool) -> tuple[str, ...]:
    """The reported names of ``metrics`` (None: the defaults), each once; ConfigError for an unknown name or
    accuracy asked of a model that predicts values."""
    if metrics is None:
        return default_metrics(regression)
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise ConfigError(f"metrics must be a list of names, got {metrics!r}; e.g. metrics=['accuracy']")
    chosen: list[str] = []
    for metric in metrics:
        name = ALIASES.get(metric.lower()) if isinstance(metric, str) else None
        if name is None:
            raise ConfigError(f"unknown metric {metric!r}; use one of {', '.join(ALIASES)}")
        if name == "accuracy" and regression:
            raise ConfigError("accuracy needs a classifier, but this model predicts values (a squared-error loss "
                              "after an identity output); report 'mse' or 'mae'")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)
