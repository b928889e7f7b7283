"""Optimizers: each update is one fused kernel pass over the flat parameter, gradient and moment buffers.

An optimizer is the one home of the learning rate: ``lr`` is the configured base rate, and its optional
``schedule`` (``xpnet.schedules``) turns it into the rate of each update from the training progress the trainer
passes in; both are saved in the model's config, so ``xpnet info`` shows what the run was configured with.

Every optimizer also takes ``weight_decay`` (L2: ``weight_decay * p`` added to the gradient, as ``torch.optim``
does; AdamW's is decoupled, ``p *= 1 - lr * weight_decay``), ``clip_norm`` (the gradient scaled so that its global
Euclidean norm is at most ``clip_norm``, as ``torch.nn.utils.clip_grad_norm_``) and ``max_norm`` (Keras's MaxNorm
after each update: every unit's incoming weight vector rescaled to norm at most ``max_norm``). Weight decay and
max-norm act on the weights only: the kernels ``W`` of Dense and Conv2D layers (the layers' ``decayed``
parameters), never biases or BatchNorm's scale and shift. The model builds the ``DecayTargets`` they act on once,
from its layers: a 0/1 mask over the flat buffer and views of the weight matrices, so a step does no host work for
them. Clipping computes the squared norm into a device scalar that the fused update reads (no read-back). With none
of these set, each optimizer runs its plain kernel, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any

from xpnet.checks import build_named, is_finite_number
from xpnet.errors import ConfigError
from xpnet.schedules import Schedule, get_schedule

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")

_OPTIONAL = ("clip_norm", "max_norm")
"""Settings that may be None (off)."""


@dataclass
class DecayTargets:
    """What weight decay, clipping and max-norm act on, built once by the model from its layers: ``mask`` a flat
    array over the parameters, 1 for those that decay (Dense and Conv2D kernels) and 0 for the rest; ``weights``
    the (fan_in, units) views of those kernels in the parameter row; ``norm_sq`` a float64 device scalar that
    clipping computes the squared gradient norm into."""

    mask: Any
    weights: list[Any]
    norm_sq: Any


@dataclass
class Optimizer:
    """Base: ``slots`` is how many moment buffers of the parameters' size the optimizer keeps; ``lr`` the base
    learning rate, which ``schedule`` (None: constant) varies over training; ``weight_decay``, ``clip_norm`` and
    ``max_norm`` as the module says (0 / None: off)."""

    lr: float = 0.01
    schedule: Schedule | dict[str, Any] | None = field(default=None, kw_only=True)
    weight_decay: float = field(default=0.0, kw_only=True)
    clip_norm: float | None = field(default=None, kw_only=True)
    max_norm: float | None = field(default=None, kw_only=True)
    slots = 0
    name = ""
    always_regularized = False
    """True for an update that has only the regularised kernel (it then always reads the decay targets)."""

    def __post_init__(self) -> None:
        self.schedule = get_schedule(self.schedule)
        for key, value in self._settings().items():
            if value is None and key in _OPTIONAL or isinstance(value, bool) and key in self._flags():
                continue
            if not is_finite_number(value):
                raise ConfigError(f"optimizer setting {key} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be 0 or more, got {self.weight_decay!r}")
        for key in _OPTIONAL:
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"{key} must be a positive number (or None: off), got {value!r}")

    def _flags(self) -> tuple[str, ...]:
        """The settings that are booleans."""
        return ()

    def _settings(self) -> dict[str, Any]:
        """The numeric settings (everything but the schedule)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "schedule"}

    def set_rate(self, lr: float) -> None:
        """Change the base rate (what callbacks such as ReduceLROnPlateau and LearningRateScheduler do between
        epochs); the schedule, if any, still applies on top of it. ConfigError unless a positive finite number."""
        if not is_finite_number(lr) or lr <= 0:
            raise ConfigError(f"learning rate must be a positive number, got {lr!r}")
        self.lr = float(lr)

    def rate(self, progress: float = 0.0) -> float:
        """The learning rate of an update at ``progress`` epochs into training (a host float: no device sync)."""
        return self.lr if self.schedule is None else float(self.schedule.rate(self.lr, progress))

    @property
    def regularized(self) -> bool:
        """Whether an update reads the decay targets (weight decay, clipping or an update that always does); else
        the plain kernel runs, with no added work."""
        return self.always_regularized or bool(self.weight_decay) or self.clip_norm is not None

    def update(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int,
               progress: float = 0.0, targets: DecayTargets | None = None) -> None:
        """Apply step number ``step`` (1-based), at ``progress`` epochs into training, in place; ``targets`` (the
        model's) are needed when the optimizer has weight decay, clipping or max-norm."""
        if targets is None and (self.regularized or self.max_norm is not None):
            raise ConfigError(f"optimizer {self.name} with weight decay, clipping or max-norm needs the model's "
                              "decay targets: train it through a Model")
        lr = self.rate(progress)
        if self.regularized:
            if self.clip_norm is not None:
                kernels.squared_norm(grads, targets.norm_sq)
            self._regularized_step(kernels, params, grads, moments, step, lr, targets, self.clip_norm or 0.0)
        else:
            self._step(kernels, params, grads, moments, step, lr)
        if self.max_norm is not None:
            for weights in targets.weights:
                kernels.max_norm(weights, self.max_norm)

    def _step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float) -> None:
        """The plain update at rate ``lr``."""
        raise NotImplementedError

    def _regularized_step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float,
                          targets: DecayTargets, clip: float) -> None:
        """The update with weight decay over ``targets.mask`` and clipping to ``clip`` (0: none)."""
        raise NotImplementedError

    def update_from_device(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, hyper: Any) -> None:
        """``update`` with the learning rate and step read from ``hyper``, a float64 device array ``[lr, step]``
        that the caller fills (``hyper_values``) before each step: what a recorded graph step replays."""
        raise NotImplementedError

    @property
    def reads_rate_from_device(self) -> bool:
        """Whether ``update_from_device`` does all that ``update`` does: only the plain updates have device-array
        variants (not weight decay, clipping, max-norm, or an update that is always regularised)."""
        has_own = type(self).update_from_device is not Optimizer.update_from_device
        return has_own and not self.regularized and self.max_norm is None

    def hyper_values(self, step: int, progress: float = 0.0) -> tuple[float, float]:
        """What ``update_from_device`` reads for step ``step`` at ``progress``: the step's rate and the step."""
        return self.rate(progress), float(step)

    def config(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in fields(self)}
        settings = {key: value for key, value in self._settings().items()
                    if key not in ("weight_decay", *_OPTIONAL) or value != defaults[key]}
        config = {"name": self.name, **settings}
        if self.schedule is not None:
            config["schedule"] = self.schedule.config()
        return config

    def describe(self) -> str:
        """The name, configured rate, regularisers and schedule: ``adamw (lr 0.001, weight decay 0.01, cosine over
        10 epochs)``."""
        parts = [f"lr {self.lr:g}"]
        if self.weight_decay:
            parts.append(f"weight decay {self.weight_decay:g}")
        if self.clip_norm is not None:
            parts.append(f"gradient norm clipped to {self.clip_norm:g}")
        if self.max_norm is not None:
            parts.append(f"max-norm {self.max_norm:g}")
        if self.schedule is not None:
            parts.append(self.schedule.describe())
        return f"{self.name} ({', '.join(parts)})"


@dataclass
class SGD(Optimizer):
    name = "sgd"

    def _step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float) -> None:
        kernels.sgd_update(params, grads, lr)

    def _regularized_step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float,
                          targets: DecayTargets, clip: float) -> None:
        kernels.sgd_regularized_update(params, grads, targets.mask, targets.norm_sq, clip, lr, self.weight_decay)

    def update_from_device(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, hyper: Any) -> None:
        kernels.sgd_update_hyper(params, grads, hyper)


@dataclass
class Momentum(Optimizer):
    """SGD with momentum as PyTorch's (dampening 0): v = momentum * v + g; p -= lr * v."""

    momentum: float = 0.9
    slots = 1
    name = "momentum"
    nesterov = False

    def _step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float) -> None:
        kernels.momentum_update(params, grads, moments[0], lr, self.momentum)

    def _regularized_step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float,
                          targets: DecayTargets, clip: float) -> None:
        kernels.momentum_regularized_update(params, grads, moments[0], targets.mask, targets.norm_sq, clip, lr,
                                            self.momentum, self.weight_decay, int(self.nesterov))

    def update_from_device(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, hyper: Any) -> None:
        kernels.momentum_update_hyper(params, grads, moments[0], hyper, self.momentum)


@dataclass
class Nesterov(Momentum):
    """SGD with Nesterov momentum as PyTorch's ``SGD(nesterov=True)``: v = momentum * v + g;
    p -= lr * (g + momentum * v)."""

    name = "nesterov"
    nesterov = True
    always_regularized = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.momentum < 1:
            raise ConfigError(f"Nesterov momentum must be between 0 and 1, got {self.momentum!r}")


@dataclass
class Adam(Optimizer):
    """Adam as PyTorch's; its ``weight_decay`` is L2 (added to the gradient), AdamW's is decoupled."""

    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    slots = 2
    name = "adam"
    decoupled = False

    def _scalars(self, step: int, lr: float) -> tuple[float, float]:
        """The step size lr / (1 - beta1^t) and sqrt(1 - beta2^t) of update ``step``."""
        return lr / (1 - self.beta1**step), math.sqrt(1 - self.beta2**step)

    def _step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float) -> None:
        step_size, bc2_sqrt = self._scalars(step, lr)
        kernels.adam_update(params, grads, moments[0], moments[1], step_size, self.beta1, self.beta2, self.eps,
                            bc2_sqrt)

    def update_from_device(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, hyper: Any) -> None:
        kernels.adam_update_hyper(params, grads, moments[0], moments[1], hyper, self.beta1, self.beta2, self.eps)

    def _regularized_step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float,
                          targets: DecayTargets, clip: float) -> None:
        step_size, bc2_sqrt = self._scalars(step, lr)
        l2, decay = (0.0, lr * self.weight_decay) if self.decoupled else (self.weight_decay, 0.0)
        kernels.adam_regularized_update(params, grads, moments[0], moments[1], targets.mask, targets.norm_sq, clip,
                                        step_size, self.beta1, self.beta2, self.eps, bc2_sqrt, l2, decay)


@dataclass
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as PyTorch's AdamW: p *= 1 - lr * weight_decay
    before the Adam step, on the weights only (see the module)."""

    weight_decay: float = field(default=0.01, kw_only=True)
    name = "adamw"
    decoupled = True


@dataclass
class RMSprop(Optimizer):
    """RMSprop as PyTorch's: a running mean of squared gradients (decay ``alpha``) divides each step; ``centered``
    subtracts the squared running mean of the gradients; ``momentum`` > 0 keeps a momentum buffer. Keeps 1 to 3
    moment buffers."""

    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    name = "rmsprop"
    always_regularized = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.centered, bool):
            raise ConfigError(f"RMSprop's centered must be true or false, got {self.centered!r}")
        if not 0 <= self.momentum < 1 or not 0 <= self.alpha < 1:
            raise ConfigError(f"RMSprop's momentum and alpha must be in [0, 1), got {self.momentum!r} and "
                              f"{self.alpha!r}")

    def _flags(self) -> tuple[str, ...]:
        return ("centered",)

    @property
    def slots(self) -> int:  # type: ignore[override]
        """The mean square, then the momentum buffer (with momentum), then the mean gradient (centred)."""
        return 1 + (self.momentum > 0) + self.centered

    def _regularized_step(self, kernels: ModuleType, params: Any, grads: Any, moments: Any, step: int, lr: float,
                          targets: DecayTargets, clip: float) -> None:
        square = moments[0]
        unused = square[:0]  # an empty row for a buffer the options leave out (never read or written)
        buffer = moments[1] if self.momentum > 0 else unused
        average = moments[-1] if self.centered else unused
        kernels.rmsprop_update(params, grads, square, buffer, average, targets.mask, targets.norm_sq, clip, lr,
                               self.alpha, self.eps, self.weight_decay, self.momentum, int(self.centered))


_CLASSES: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Adam, AdamW, RMSprop)}


def get_optimizer(optimizer: str | Optimizer | dict, lr: float | None = None, **options: Any) -> Optimizer:
    """An Optimizer from a name (with optional ``lr`` and keyword ``options``, such as ``weight_decay=0.01``), a
    config dict (``{"name": "adamw", "lr": 1e-3, ...}``), or the instance itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, dict):
        settings = dict(optimizer)
        name = str(settings.pop("name", ""))
    else:
        name, settings = str(optimizer).lower(), {}
    settings.update(options)
    if lr is not None:
        settings["lr"] = lr
    return build_named("optimizer", _CLASSES, name, settings, ", ".join(OPTIMIZERS))
