"""Feature scaling learned on the training data: per-column statistics gathered a chunk at a time, and the
standardisation they give, saved in a model's preprocessing so that prediction scales raw inputs the same way.

Statistics are kept per *group*: the last axis of the arrays given (a CSV's feature columns, an image's colour
channels, a histogram's bins), so one pass over data larger than memory learns them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.errors import DataError, ModelFileError

CONSTANT = 1e-7
"""A column whose standard deviation is below this share of its magnitude is constant: it is only centred (divided
by 1), so that a value unseen in training stays of the order of the data instead of exploding."""


class RunningStats:
    """Count, mean and sum of squared deviations per group, merged chunk by chunk (Chan et al.'s update)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def update(self, values: Any) -> RunningStats:
        """Add ``values`` (..., groups): every leading index is one more observation of each group."""
        values = np.asarray(values, dtype=np.float64)
        rows = values.reshape(-1, values.shape[-1])
        n = rows.shape[0]
        if n == 0:
            return self
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return self
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total
        return self

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per group."""
        if self.mean is None or self.m2 is None:
            raise DataError("no training samples to learn the feature scaling from")
        return np.sqrt(self.m2 / self.count)


class Standardizer:
    """(x - mean) / std per group (the last axis), with the mean and std of the training data."""

    def __init__(self, mean: Any, std: Any) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        self.std = np.where(std > CONSTANT * np.maximum(1.0, np.abs(self.mean)), std, 1.0)

    @classmethod
    def from_stats(cls, stats: RunningStats) -> Standardizer:
        """The standardisation of data with these statistics."""
        return cls(stats.mean, stats.std)

    def transform(self, values: Any) -> np.ndarray:
        """Standardised float32 rows (samples, features): ``values`` is (samples, ..., groups)."""
        values = np.asarray(values)
        if values.shape[-1] != self.mean.shape[0]:
            raise DataError(f"expected {self.mean.shape[0]} values per group (last axis), got shape {values.shape}")
        scaled = (values - self.mean.astype(np.float32)) / self.std.astype(np.float32)
        return scaled.astype(np.float32, copy=False).reshape(values.shape[0], -1)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    @classmethod
    def from_dict(cls, state: Any) -> Standardizer:
        """The scaling a model saved; a malformed one is a ModelFileError."""
        try:
            scaler = cls(state["mean"], state["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the saved feature scaling is malformed: {exc!r}") from None
        if scaler.mean.ndim != 1 or scaler.mean.shape != scaler.std.shape or not scaler.mean.size:
            raise ModelFileError("the saved feature scaling is malformed: mean and std must be equally long lists")
        return scaler
