"""Losses, each computed by one fused kernel that writes the gradient and accumulates loss and accuracy."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from xpnet.checks import build_named, is_finite_number
from xpnet.errors import ConfigError
from xpnet.kernels import ACTIVATIONS, SIGMOID, SOFTMAX

LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse", "sse")
ALIASES = {"cce": "categorical_crossentropy", "bce": "binary_crossentropy"}


class Loss:
    """Base: ``gradient`` writes dL/da into ``delta``, or dL/dz for a loss fused with its output activation."""

    name = ""
    needs_activation: int | None = None

    @property
    def gives_dz(self) -> bool:
        """True when the loss is fused with the output activation and its gradient is already dL/dz."""
        return self.needs_activation is not None

    def check_output(self, activation: str) -> None:
        """Raise ConfigError when this loss cannot be used after the output activation."""
        if self.needs_activation is not None and ACTIVATIONS.get(activation) != self.needs_activation:
            wanted = "softmax" if self.needs_activation == SOFTMAX else "sigmoid"
            raise ConfigError(
                f"loss {self.name!r} needs a {wanted} output layer, but the last layer's activation is "
                f"{activation!r}; change the output activation to {wanted} or pick another loss"
            )

    def gradient(self, kernels: ModuleType, z: Any, a: Any, y: Any, delta: Any, stats: Any) -> None:
        raise NotImplementedError

    def objective(self, loss_sum: float, n: int) -> float:
        """The quantity whose gradient ``gradient`` computes, from the accumulated per-sample losses: the mean."""
        return loss_sum / n

    def config(self) -> str | dict[str, Any]:
        """What a saved model records: the name (a dict with the options, for a loss that has any set)."""
        return self.name


class FusedLoss(Loss):
    """A loss computed together with its output activation by the kernel named ``kernel``: dz = (a - y) / size."""

    kernel = ""

    def gradient(self, kernels: ModuleType, z: Any, a: Any, y: Any, delta: Any, stats: Any) -> None:
        getattr(kernels, self.kernel)(z, a, y, delta, stats)


class CategoricalCrossEntropy(FusedLoss):
    """Softmax + categorical cross-entropy, fused: dz = (a - y) / n. With ``label_smoothing`` s the target is
    (1 - s) * y + s / classes, as PyTorch's ``cross_entropy(label_smoothing=s)`` (the reported loss is the
    smoothed one; accuracy is against the true labels)."""

    name = "categorical_crossentropy"
    needs_activation = SOFTMAX
    kernel = "softmax_cross_entropy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not is_finite_number(label_smoothing) or not 0 <= label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def gradient(self, kernels: ModuleType, z: Any, a: Any, y: Any, delta: Any, stats: Any) -> None:
        if self.label_smoothing:
            kernels.softmax_cross_entropy_smoothed(z, a, y, delta, stats, self.label_smoothing)
        else:
            kernels.softmax_cross_entropy(z, a, y, delta, stats)

    def config(self) -> str | dict[str, Any]:
        return {"name": self.name, "label_smoothing": self.label_smoothing} if self.label_smoothing else self.name


class BinaryCrossEntropy(FusedLoss):
    """Sigmoid + binary cross-entropy (mean over outputs), fused: dz = (a - y) / (n * m)."""

    name = "binary_crossentropy"
    needs_activation = SIGMOID
    kernel = "sigmoid_binary_cross_entropy"


class MeanSquaredError(Loss):
    """Mean over outputs and batch of (a - y)^2."""

    name = "mse"

    def gradient(self, kernels: ModuleType, z: Any, a: Any, y: Any, delta: Any, stats: Any) -> None:
        n, m = a.shape
        kernels.squared_error(a, y, delta, stats, 2.0 / (n * m), 1.0 / m)


class SumSquaredError(Loss):
    """Half the sum of squared errors over outputs and batch (the classic tutorials' loss): grad = a - y."""

    name = "sse"

    def gradient(self, kernels: ModuleType, z: Any, a: Any, y: Any, delta: Any, stats: Any) -> None:
        kernels.squared_error(a, y, delta, stats, 1.0, 0.5)

    def objective(self, loss_sum: float, n: int) -> float:
        """The sum over the batch, not the mean: the tutorials' updates use the summed error."""
        return loss_sum


_CLASSES = {cls.name: cls for cls in (CategoricalCrossEntropy, BinaryCrossEntropy, MeanSquaredError, SumSquaredError)}


def get_loss(loss: str | dict[str, Any] | Loss, **options: Any) -> Loss:
    """A Loss from its name (or alias cce/bce) with keyword ``options`` (``label_smoothing=0.1`` for categorical
    cross-entropy), a saved config dict (``{"name": ..., "label_smoothing": 0.1}``), or the instance itself."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, dict):
        options = {**{k: v for k, v in loss.items() if k != "name"}, **options}
        loss = loss.get("name", "")
    name = ALIASES.get(str(loss).lower(), str(loss).lower())
    return build_named("loss", _CLASSES, name, options, f"{', '.join(LOSSES)} (or cce, bce)")
