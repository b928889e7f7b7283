"""The network: dense layers over one flat parameter buffer, trained by fused kernels on the backend's device.

Parameters, gradients and optimizer moments live in one ``(2 + slots, P)`` array: row 0 the parameters, row 1
their gradients, the rest the optimizer's moments. Each layer's ``W``, ``b``, ``dW`` and ``db`` are views into it,
so the optimizer updates everything in one pass. Activations are preallocated per batch size, the whole training
set is copied to the device once, and batches are gathered there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xpnet.backend import Backend, get_backend
from xpnet.errors import ConfigError, DataError, TrainingError
from xpnet.initializers import initial_weights
from xpnet.layers import Dense, LayerBuffers
from xpnet.losses import Loss, get_loss
from xpnet.optimizers import Optimizer, get_optimizer
from xpnet.progress import EpochProgress

PREDICT_CHUNK = 8192
"""Rows per forward pass in predict and evaluate, bounding the memory they need."""


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


def _first_rows(buffers: list[LayerBuffers], rows: int) -> list[LayerBuffers]:
    """The buffers themselves, or views of their first ``rows`` rows for a shorter (last) batch."""
    return buffers if buffers[0].z.shape[0] == rows else [b.view(rows) for b in buffers]


class Model:
    """A feed-forward network of ``Dense`` layers with a loss and an optimizer, on one backend.

    ``device``, ``dtype``, ``seed`` and ``kernel_mode`` build a backend unless ``backend`` is given. The seed fixes
    the initial weights and the shuffling order, identically on every device. ``class_names`` and
    ``preprocessing`` are carried along for saving: the CLI uses them to turn inputs into features and outputs
    into names.
    """

    def __init__(
        self,
        layers: Sequence[Dense],
        loss: str | Loss = "categorical_crossentropy",
        optimizer: str | dict | Optimizer = "adam",
        *,
        lr: float | None = None,
        device: str | None = None,
        dtype: Any = "float32",
        seed: int | None = None,
        kernel_mode: str | None = None,
        backend: Backend | None = None,
        class_names: Sequence[str] | None = None,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ConfigError("a model needs at least one layer")
        for i, (prev, nxt) in enumerate(zip(self.layers, self.layers[1:], strict=False)):
            if prev.output_dim != nxt.input_dim:
                raise ConfigError(
                    f"layer {i} outputs {prev.output_dim} values but layer {i + 1} expects {nxt.input_dim} inputs"
                )
        self.loss = get_loss(loss)
        last = self.layers[-1]
        self.loss.check_output(last.activation, last.code)
        self.optimizer = get_optimizer(optimizer, lr)
        self.backend = backend or get_backend(device, dtype, seed, kernel_mode)
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self._class_count():
            raise ConfigError(f"{len(self.class_names)} class names given for {self._class_count()} classes")
        self.preprocessing = dict(preprocessing or {})
        self.step = 0
        self.stop_training = False
        # draws each epoch's batch order; checkpoints save its state so a resumed run shuffles identically
        self.shuffle_rng = self.backend.rng
        self.position = TrainingPosition()
        self._workspaces: dict[tuple[int, bool], tuple[Any, Any, list[LayerBuffers]]] = {}
        self._bind_buffers()
        self.set_parameters(self._initial_parameters())

    # ----------------------------------------------------------------------------------------------- structure
    @property
    def input_dim(self) -> int:
        return self.layers[0].input_dim

    @property
    def output_dim(self) -> int:
        return self.layers[-1].output_dim

    @property
    def parameter_count(self) -> int:
        return sum(layer.parameter_count for layer in self.layers)

    @property
    def dtype(self) -> np.dtype:
        return self.backend.dtype

    def _class_count(self) -> int:
        return max(2, self.output_dim)

    def _bind_buffers(self) -> None:
        """Allocate the flat buffer and point every layer's parameter and gradient views into it."""
        backend = self.backend
        self.buffer = backend.zeros((2 + self.optimizer.slots, self.parameter_count))
        params, grads = self.buffer[0], self.buffer[1]
        offset = 0
        for layer in self.layers:
            size = layer.input_dim * layer.output_dim
            layer.W = params[offset : offset + size].reshape(layer.input_dim, layer.output_dim)
            layer.dW = grads[offset : offset + size].reshape(layer.input_dim, layer.output_dim)
            offset += size
            if layer.bias:
                layer.b = params[offset : offset + layer.output_dim]
                layer.db = grads[offset : offset + layer.output_dim]
                offset += layer.output_dim
            else:  # a constant zero bias, and a scratch gradient that the optimizer never sees
                layer.b = backend.zeros(layer.output_dim)
                layer.db = backend.zeros(layer.output_dim)

    def _initial_parameters(self) -> np.ndarray:
        rng = self.backend.rng
        parts = []
        for layer in self.layers:
            parts.append(
                initial_weights(layer.init, layer.input_dim, layer.output_dim, rng, layer.init_scale).ravel()
            )
            if layer.bias:
                parts.append(np.zeros(layer.output_dim))
        return np.concatenate(parts)

    def get_parameters(self) -> np.ndarray:
        """A host copy of the flat parameter vector."""
        return self.backend.to_host(self.buffer[0]).copy()

    def set_parameters(self, flat: Any) -> None:
        """Overwrite all parameters from a flat vector of ``parameter_count`` values."""
        flat = np.asarray(self.backend.to_host(flat))
        if flat.shape != (self.parameter_count,):
            raise ConfigError(f"expected {self.parameter_count} parameters, got an array of shape {flat.shape}")
        self.buffer[0] = self.backend.asarray(flat, dtype=self.dtype)

    @property
    def moments(self) -> Any:
        """The optimizer's moment buffers, shape ``(slots, P)``."""
        return self.buffer[2:]

    def summary(self) -> str:
        """A readable table of the layers, parameter counts, loss, optimizer and device."""
        lines = [f"{'layer':<6}{'shape':>14}  {'activation':<11}{'parameters':>11}"]
        for i, layer in enumerate(self.layers):
            shape = f"{layer.input_dim}->{layer.output_dim}"
            lines.append(f"{i:<6}{shape:>14}  {layer.activation:<11}{layer.parameter_count:>11,}")
        lines.append(
            f"total {self.parameter_count:,} parameters; loss {self.loss.name}; optimizer {self.optimizer.name} "
            f"(lr {self.optimizer.lr:g}); {self.backend.name} {self.dtype.name}, {self.backend.kernel_mode} kernels"
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = "-".join(str(n) for n in [self.input_dim] + [layer.output_dim for layer in self.layers])
        return f"Model({sizes}, loss={self.loss.name}, optimizer={self.optimizer.name}, device={self.backend.name})"

    # ------------------------------------------------------------------------------------------ data handling
    def _features(self, x: Any, what: str = "x") -> Any:
        """``x`` as a C-contiguous device array of the model's dtype, after checking its shape and values."""
        backend = self.backend
        shape = getattr(x, "shape", None)
        if shape is None:
            x = np.asarray(x)
            shape = x.shape
        if len(shape) == 1 and self.input_dim == 1:
            x = x.reshape(-1, 1)
            shape = x.shape
        if len(shape) != 2 or shape[1] != self.input_dim:
            raise ConfigError(
                f"{what} has shape {tuple(shape)}, but the model expects (samples, {self.input_dim}); "
                f"reshape it to one row of {self.input_dim} features per sample"
            )
        if shape[0] == 0:
            raise DataError(f"{what} is empty: there are no samples to work on")
        if getattr(x, "dtype", None) is not None and x.dtype.kind not in "fiub":
            raise DataError(f"{what} has dtype {x.dtype}; expected numbers")
        device_x = backend.xp.ascontiguousarray(backend.asarray(x, dtype=self.dtype))
        if not bool(backend.xp.isfinite(device_x).all()):
            raise DataError(f"{what} contains NaN or infinite values; clean or impute them before training")
        return device_x

    def _targets(self, y: Any, n: int, what: str = "y") -> Any:
        """Targets as a device array (n, outputs): integer class labels become one-hot rows."""
        backend = self.backend
        y_host = np.asarray(backend.to_host(y))
        if y_host.shape[:1] != (n,):
            raise ConfigError(f"{what} has {y_host.shape[0] if y_host.ndim else 0} rows but x has {n} samples")
        m = self.output_dim
        if y_host.ndim == 1 and m > 1:
            if y_host.dtype.kind not in "iub" and not np.all(np.mod(y_host, 1) == 0):
                raise DataError(f"{what} holds non-integer class labels; give labels 0..{m - 1} or one-hot rows")
            labels = y_host.astype(np.int64)
            if labels.min() < 0 or labels.max() >= m:
                bad = labels[(labels < 0) | (labels >= m)][0]
                raise DataError(
                    f"{what} has label {bad}, outside the model's {m} classes 0..{m - 1}; check the labels or "
                    f"give the output layer more units"
                )
            y_host = np.eye(m)[labels]
        elif y_host.ndim == 1:
            y_host = y_host.reshape(-1, 1)
        if y_host.ndim != 2 or y_host.shape[1] != m:
            raise ConfigError(
                f"{what} has shape {y_host.shape}, but the model has {m} outputs: give (samples, {m}) targets"
                + (" or integer class labels" if m > 1 else "")
            )
        if not np.isfinite(y_host.astype(np.float64, copy=False)).all():
            raise DataError(f"{what} contains NaN or infinite values")
        return backend.xp.ascontiguousarray(backend.asarray(y_host, dtype=self.dtype))

    def _workspace(self, capacity: int, training: bool) -> tuple[Any, Any, list[LayerBuffers]]:
        """Preallocated input, target and per-layer buffers for batches of up to ``capacity`` rows."""
        key = (capacity, training)
        if key not in self._workspaces:
            backend = self.backend
            buffers = []
            for layer in self.layers:
                shape = (capacity, layer.output_dim)
                d = backend.empty(shape) if training else None
                buffers.append(LayerBuffers(backend.empty(shape), backend.empty(shape), d, backend.empty(shape)))
            x = backend.empty((capacity, self.input_dim)) if training else None
            y = backend.empty((capacity, self.output_dim)) if training else None
            self._workspaces = {k: v for k, v in self._workspaces.items() if k[1] != training}
            self._workspaces[key] = (x, y, buffers)
        return self._workspaces[key]

    # ---------------------------------------------------------------------------------------------- compute
    def _forward(self, x: Any, buffers: list[LayerBuffers], derivatives: bool) -> Any:
        xp, kernels = self.backend.xp, self.backend.kernels
        a = x
        last = len(self.layers) - 1
        for i, (layer, buf) in enumerate(zip(self.layers, buffers, strict=True)):
            xp.matmul(a, layer.W, out=buf.z)
            # the fused losses give dL/dz directly, so the output layer needs no derivative then
            need_d = derivatives and not (i == last and self.loss.gives_dz)
            kernels.bias_activation(buf.z, layer.b, layer.code, layer.alpha, buf.a, buf.d if need_d else None)
            a = buf.a
        return a

    def _backward(self, x: Any, y: Any, buffers: list[LayerBuffers], stats: Any) -> None:
        """Loss gradient into the output layer's delta, then dW, db and deltas layer by layer (no dX)."""
        xp, kernels = self.backend.xp, self.backend.kernels
        out = buffers[-1]
        self.loss.gradient(kernels, out.z, out.a, y, out.delta, stats)
        for i in range(len(self.layers) - 1, -1, -1):
            layer, buf = self.layers[i], buffers[i]
            if self.loss.gives_dz and i == len(self.layers) - 1:
                xp.sum(buf.delta, axis=0, out=layer.db)
            else:  # delta holds dL/da: turn it into dL/dz in place, summing db on the way
                kernels.activation_backward(buf.delta, buf.d, buf.a, layer.code, buf.delta, layer.db)
            previous = x if i == 0 else buffers[i - 1].a
            xp.matmul(previous.T, buf.delta, out=layer.dW)
            if i > 0:
                xp.matmul(buf.delta, layer.W.T, out=buffers[i - 1].delta)

    def train_step(self, x: Any, y: Any, buffers: list[LayerBuffers], stats: Any) -> None:
        """One optimizer step on the batch ``x``, ``y`` (device arrays of the model's dtype)."""
        self._forward(x, buffers, derivatives=True)
        self._backward(x, y, buffers, stats)
        self.step += 1
        self.optimizer.update(self.backend.kernels, self.buffer[0], self.buffer[1], self.buffer[2:], self.step)

    # ------------------------------------------------------------------------------------------------ public
    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int | None = 32,
        *,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int = 1,
        callbacks: Sequence[Callable[[Model, int, dict[str, float]], None]] = (),
        history: History | None = None,
        position: TrainingPosition | None = None,
        lr_schedule: Callable[[int], float] | None = None,
    ) -> History:
        """Train for ``epochs`` epochs and return the per-epoch History.

        ``batch_size`` None trains full-batch, 1 online. ``validation_split`` holds out the last fraction of the
        samples (before shuffling), like Keras. ``seed`` fixes the shuffling order. Each callback is called as
        ``callback(model, epoch, logs)`` after every epoch; setting ``model.stop_training`` (from a callback or a
        signal handler) stops after the current step. ``history`` and ``position`` continue an earlier run (see
        ``xpnet.checkpoint``), ``epochs`` counting from its start; ``self.position`` always says where training
        stands. ``lr_schedule(epoch)`` (0-based) sets the learning rate at the start of every epoch.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {epochs!r}")
        with self.backend.out_of_memory(batch_size or len(x)):
            x_all = self._features(x)
            y_all = self._targets(y, x_all.shape[0])
            if validation_data is not None and validation_split:
                raise ConfigError("give validation_data or validation_split, not both")
            if not 0.0 <= validation_split < 1.0:
                raise ConfigError(f"validation_split must be in [0, 1), got {validation_split!r}")
            if validation_data is not None:
                val_x = self._features(validation_data[0], "validation x")
                validation_data = (val_x, self._targets(validation_data[1], val_x.shape[0], "validation y"))
            if validation_split:
                n_val = int(round(x_all.shape[0] * validation_split))
                if n_val < 1 or n_val >= x_all.shape[0]:
                    raise ConfigError(f"validation_split {validation_split} leaves no training or validation samples")
                validation_data = (x_all[-n_val:], y_all[-n_val:])
                x_all, y_all = x_all[:-n_val], y_all[:-n_val]
            n = x_all.shape[0]
            if batch_size is None:
                batch_size = n
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ConfigError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
            batch_size = min(batch_size, n)
            steps = math.ceil(n / batch_size)
            history = history or History()
            position = position or TrainingPosition(epoch=len(history.epoch))
            if not 0 <= position.batch < steps or (position.batch and not position.seen):
                raise ConfigError(
                    f"cannot resume at batch {position.batch} of an epoch of {steps} batches: the checkpoint was "
                    "written for other data or another batch size; resume with the same data and settings"
                )
            if seed is not None:
                self.shuffle_rng = np.random.default_rng(seed)
            rng = self.shuffle_rng
            xb_all, yb_all, buffers = self._workspace(batch_size, training=True)
            stats = self.backend.zeros(2, dtype=np.float64)
            check_every = 1 if self.backend.name == "cpu" else 50
            self.stop_training = False
            self.position = position
            while position.epoch < epochs and not self.stop_training:
                if lr_schedule is not None:
                    self.optimizer.lr = float(lr_schedule(position.epoch))
                if position.rng_state is None:
                    position.rng_state = rng.bit_generator.state
                else:
                    rng.bit_generator.state = position.rng_state
                order = self.backend.asarray(rng.permutation(n)) if shuffle and steps > 1 else None
                stats[0], stats[1] = position.loss_sum, position.correct
                started = time.perf_counter()
                bar = EpochProgress(position.epoch + 1, epochs, steps, position.batch, verbose > 0)
                while position.batch < steps and not self.stop_training:
                    lo = position.batch * batch_size
                    hi = min(n, lo + batch_size)
                    rows = hi - lo
                    buf = _first_rows(buffers, rows)
                    if order is None:
                        xb, yb = x_all[lo:hi], y_all[lo:hi]
                    else:
                        xb, yb = xb_all[:rows], yb_all[:rows]
                        self.backend.kernels.gather_rows(x_all, order[lo:hi], xb)
                        self.backend.kernels.gather_rows(y_all, order[lo:hi], yb)
                    self.train_step(xb, yb, buf, stats)
                    position.batch += 1
                    position.seen += rows
                    if position.batch % check_every == 0 or position.batch == steps:
                        loss_sum, correct = (float(v) for v in self.backend.to_host(stats))
                        self._check_finite(loss_sum, position)
                        position.loss_sum, position.correct = loss_sum, correct
                        bar.update(position.batch, loss_sum / position.seen, correct / position.seen)
                if position.batch < steps:  # stopped early: the epoch stays open for a resume
                    bar.close()
                    break
                logs = {
                    "loss": position.loss_sum / position.seen,
                    "accuracy": position.correct / position.seen,
                    "time": time.perf_counter() - started,
                }
                if validation_data is not None:
                    val = self._evaluate(*validation_data)
                    logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
                bar.finish(logs)
                history.append(position.epoch + 1, logs)
                position.next_epoch()
                for callback in callbacks:
                    callback(self, position.epoch, logs)
            return history

    def _check_finite(self, loss_sum: float, position: TrainingPosition) -> None:
        if not math.isfinite(loss_sum):
            raise TrainingError(
                f"the loss became {loss_sum} at epoch {position.epoch + 1}, step {position.batch} (optimizer "
                f"{self.optimizer.name}, learning rate {self.optimizer.lr:g}): training diverged. "
                f"Try a lower learning rate, for example --lr {self.optimizer.lr / 10:g}"
            )

    def _forward_in_chunks(self, x_dev: Any) -> Iterator[tuple[int, int, list[LayerBuffers]]]:
        """Forward passes over ``x_dev`` in chunks of at most PREDICT_CHUNK rows: (first row, end row, buffers)."""
        n = x_dev.shape[0]
        _, _, buffers = self._workspace(min(n, PREDICT_CHUNK), training=False)
        for lo in range(0, n, PREDICT_CHUNK):
            hi = min(n, lo + PREDICT_CHUNK)
            chunk = _first_rows(buffers, hi - lo)
            self._forward(x_dev[lo:hi], chunk, derivatives=False)
            yield lo, hi, chunk

    def predict_proba(self, x: Any) -> np.ndarray:
        """The output layer's activations (class probabilities for softmax/sigmoid outputs), as a host array."""
        x_dev = self._features(x)
        out = np.empty((x_dev.shape[0], self.output_dim), dtype=self.dtype)
        for lo, hi, chunk in self._forward_in_chunks(x_dev):
            out[lo:hi] = self.backend.to_host(chunk[-1].a)
        return out

    def predict(self, x: Any) -> np.ndarray:
        """Class indices: the argmax of the outputs, or output >= 0.5 for a single-output model."""
        proba = self.predict_proba(x)
        if self.output_dim == 1:
            return (proba[:, 0] >= 0.5).astype(np.int64)
        return proba.argmax(axis=1)

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """Mean loss and accuracy on ``x``, ``y`` (class labels or target rows)."""
        x_dev = self._features(x)
        return self._evaluate(x_dev, self._targets(y, x_dev.shape[0]))

    def _evaluate(self, x_dev: Any, y_dev: Any) -> dict[str, float]:
        stats = self.backend.zeros(2, dtype=np.float64)
        for lo, hi, chunk in self._forward_in_chunks(x_dev):
            out = chunk[-1]
            self.loss.gradient(self.backend.kernels, out.z, out.a, y_dev[lo:hi], out.delta, stats)
        loss_sum, correct = (float(v) for v in self.backend.to_host(stats))
        return {"loss": loss_sum / x_dev.shape[0], "accuracy": correct / x_dev.shape[0]}

    def config(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-serialisable data (see ``xpnet.serialization``)."""
        return {
            "layers": [layer.config() for layer in self.layers],
            "loss": self.loss.name,
            "optimizer": self.optimizer.config(),
            "dtype": self.dtype.name,
            "class_names": self.class_names,
            "preprocessing": self.preprocessing,
            "step": self.step,
        }
