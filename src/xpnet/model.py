"""The network: a sequence of layers over one flat parameter buffer, with a loss and an optimizer, on one backend.

Parameters, gradients and optimizer moments live in one ``(2 + slots, P)`` array: row 0 the parameters, row 1
their gradients, the rest the optimizer's moments; non-trainable state (BatchNorm's running statistics) in a second
flat array. Each layer gets views into them, so the optimizer updates everything in one pass and an Allreduce of
the gradients is one call. The model only sequences layers: each layer computes its own forward and backward pass
in work buffers preallocated per batch size. The training loop lives in ``xpnet.trainer``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.backend import Backend, get_backend
from xpnet.errors import ConfigError, DataError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, as_shape, describe_shape
from xpnet.losses import Loss, get_loss
from xpnet.optimizers import Optimizer, get_optimizer
from xpnet.trainer import Callback, ChunkedData, History, Trainer, TrainingPosition

if TYPE_CHECKING:
    from xpnet.distributed import Communicator

PREDICT_CHUNK = 8192
"""Rows per forward pass in predict and evaluate, bounding the memory they need."""


@dataclass
class ModelWorkspace:
    """Every buffer one step needs, for batches of up to some number of rows: the gathered batch ``x`` (flat rows)
    and ``y`` (None at inference), each layer's workspace, and the loss gradient ``dy``."""

    x: Any
    y: Any
    layers: list[Workspace]
    dy: Any

    def first(self, rows: int) -> ModelWorkspace:
        """The same buffers for a shorter (last) batch of ``rows`` rows."""
        if self.dy.shape[0] == rows:
            return self
        x = None if self.x is None else self.x[:rows]
        y = None if self.y is None else self.y[:rows]
        return ModelWorkspace(x, y, [ws.first(rows) for ws in self.layers], self.dy[:rows])


def infer_shapes(layers: Sequence[Layer], input_shape: Shape) -> Shape:
    """Build every layer in turn from ``input_shape`` (per sample); return the last layer's output shape."""
    shape = input_shape
    for i, layer in enumerate(layers):
        shape = layer.build(shape, i)
    return shape


def model_input_shape(layers: Sequence[Layer], input_shape: Any) -> Shape:
    """The input shape given to the model, or else declared by its first layer; ConfigError when neither is."""
    if input_shape is not None:
        return as_shape(input_shape, "input_shape")
    if layers and layers[0].declared_input_shape is not None:
        return layers[0].declared_input_shape
    raise ConfigError("the model's input shape is unknown: give input_shape=... (784, or (28, 28, 1)) or the first "
                      "layer's input_dim / input_shape")


class Model:
    """A sequence of layers with a loss and an optimizer, on one backend (``Sequential`` is the same class).

    ``input_shape`` is one sample's shape, unless the first layer declares it (``Dense(..., input_dim=784)``).
    ``device``, ``dtype``, ``seed`` and ``kernel_mode`` build a backend unless ``backend`` is given. The seed fixes
    the initial weights, dropout masks and the shuffling order, identically on every device. ``class_names`` and
    ``preprocessing`` are carried along for saving: the CLI uses them to turn inputs into features and outputs into
    names.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        loss: str | Loss = "categorical_crossentropy",
        optimizer: str | dict | Optimizer = "adam",
        *,
        input_shape: Any = None,
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
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"layer {i} is {layer!r}, not an xpnet layer (Dense, Conv2D, MaxPool2D, ...)")
        self.input_shape = model_input_shape(self.layers, input_shape)
        output_shape = infer_shapes(self.layers, self.input_shape)
        if len(output_shape) != 1:
            raise ConfigError(f"the last layer outputs {output_shape} per sample; a loss needs flat outputs: end "
                              "with Flatten() and a Dense layer")
        self.loss = get_loss(loss)
        last = self.layers[-1]
        self.loss.check_output(getattr(last, "activation", "identity"))
        last.fused_with_loss = self.loss.gives_dz
        self.optimizer = get_optimizer(optimizer, lr)
        self.backend = backend or get_backend(device, dtype, seed, kernel_mode)
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self._class_count():
            raise ConfigError(f"{len(self.class_names)} class names given for {self._class_count()} classes")
        self.preprocessing = dict(preprocessing or {})
        self.step = 0
        self.stream = 0
        """Which rank of a data-parallel run this model trains as: each draws its own dropout masks."""
        self.stop_training = False
        # draws each epoch's batch order; checkpoints save its state so a resumed run shuffles identically
        self.shuffle_rng = self.backend.rng
        self.position = TrainingPosition()
        self._workspaces: dict[tuple[int, bool], ModelWorkspace] = {}
        self._first_trainable = next((i for i, layer in enumerate(self.layers) if layer.parameter_count), None)
        self._bind_buffers()
        self._initialize()

    # ----------------------------------------------------------------------------------------------- structure
    @property
    def input_dim(self) -> int:
        """Values per input sample (the length of a flat input row)."""
        return math.prod(self.input_shape)

    @property
    def output_dim(self) -> int:
        return self.layers[-1].output_shape[0]

    @property
    def parameter_count(self) -> int:
        return sum(layer.parameter_count for layer in self.layers)

    @property
    def state_count(self) -> int:
        return sum(layer.state_count for layer in self.layers)

    @property
    def dtype(self) -> np.dtype:
        return self.backend.dtype

    @property
    def is_regression(self) -> bool:
        """True for a model that predicts values, not classes: a squared-error loss after an identity output. It
        reports MSE and MAE instead of accuracy, and ``predict`` returns values. (A squared error after a softmax,
        sigmoid or ReLU output is the classic tutorials' classifier on one-hot targets.)"""
        return self.loss.name in ("mse", "sse") and getattr(self.layers[-1], "activation", "identity") == "identity"

    def _class_count(self) -> int:
        return max(2, self.output_dim)

    def _bind_buffers(self) -> None:
        """Allocate the flat buffers and hand every layer its views of its parameters, gradients and state."""
        backend = self.backend
        self.buffer = backend.zeros((2 + self.optimizer.slots, self.parameter_count))
        self.state = backend.zeros(self.state_count)
        offset, state_offset = 0, 0
        for layer in self.layers:
            params, grads, state = {}, {}, {}
            for name, shape in layer.parameter_shapes().items():
                size = math.prod(shape)
                params[name] = self.buffer[0, offset : offset + size].reshape(shape)
                grads[name] = self.buffer[1, offset : offset + size].reshape(shape)
                offset += size
            for name, shape in layer.state_shapes().items():
                size = math.prod(shape)
                state[name] = self.state[state_offset : state_offset + size].reshape(shape)
                state_offset += size
            layer.bind(backend, params, grads, state)

    def _initialize(self) -> None:
        """Initial parameters and state, drawn layer by layer from the backend's seeded host generator."""
        params, state = [], []
        for layer in self.layers:
            values = layer.initialize(self.backend.rng)
            params += [np.asarray(values[name], dtype=np.float64).ravel() for name in layer.parameter_shapes()]
            initial = layer.initial_state()
            state += [np.asarray(initial[name], dtype=np.float64).ravel() for name in layer.state_shapes()]
        self.set_parameters(np.concatenate(params) if params else np.zeros(0))
        self.set_state(np.concatenate(state) if state else np.zeros(0))

    def get_parameters(self) -> np.ndarray:
        """A host copy of the flat parameter vector."""
        return self.backend.to_host(self.buffer[0]).copy()

    def set_parameters(self, flat: Any) -> None:
        """Overwrite all parameters from a flat vector of ``parameter_count`` values."""
        self.buffer[0] = self._checked_flat(flat, self.parameter_count, "parameters")

    def get_state(self) -> np.ndarray:
        """A host copy of the flat non-trainable state (running statistics)."""
        return self.backend.to_host(self.state).copy()

    def set_state(self, flat: Any) -> None:
        self.state[...] = self._checked_flat(flat, self.state_count, "state values")

    def _checked_flat(self, flat: Any, size: int, what: str) -> Any:
        flat = np.asarray(self.backend.to_host(flat))
        if flat.shape != (size,):
            raise ConfigError(f"expected {size} {what}, got an array of shape {flat.shape}")
        return self.backend.asarray(flat, dtype=self.dtype)

    @property
    def moments(self) -> Any:
        """The optimizer's moment buffers, shape ``(slots, P)``."""
        return self.buffer[2:]

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A Keras-like table of the layers (output shapes, parameter counts), totals, loss, optimizer and device;
        printed with ``print_fn`` (None: not printed) and returned."""
        rows = [("Input", describe_shape(self.input_shape), "", "")]
        for i, layer in enumerate(self.layers):
            count = layer.parameter_count + layer.state_count
            rows.append((f"{i} {layer.type_name}", describe_shape(layer.output_shape), f"{count:,}", layer.details()))
        header = ("Layer", "Output shape", "Param #", "")
        widths = [max(len(row[k]) for row in [header, *rows]) for k in range(3)]

        def line(row: tuple[str, ...]) -> str:
            return f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()

        table = [line(row) for row in rows]
        rule = "-" * max(len(text) for text in [line(header), *table])
        text = "\n".join([
            line(header), rule, *table, rule,
            f"Total params: {self.parameter_count + self.state_count:,} (trainable {self.parameter_count:,}, "
            f"non-trainable {self.state_count:,})",
            f"loss {self.loss.name}; optimizer {self.optimizer.name} (lr {self.optimizer.lr:g}); "
            f"{self.backend.name} {self.dtype.name}, {self.backend.kernel_mode} kernels",
        ])
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        kinds = "-".join(layer.type_name for layer in self.layers)
        return (f"Model({describe_shape(self.input_shape)} {kinds} -> {self.output_dim}, loss={self.loss.name}, "
                f"optimizer={self.optimizer.name}, device={self.backend.name})")

    # ------------------------------------------------------------------------------------------ data handling
    def _features(self, x: Any, what: str = "x") -> Any:
        """``x`` as a C-contiguous device array of flat rows in the model's dtype, after checking shape and values."""
        backend = self.backend
        shape = getattr(x, "shape", None)
        if shape is None:
            x = np.asarray(x)
            shape = x.shape
        shape = tuple(shape)
        if len(shape) == 1 and self.input_shape == (1,):
            x = x.reshape(-1, 1)
            shape = x.shape
        if shape[1:] != self.input_shape:
            raise ConfigError(
                f"{what} has shape {shape}, but the model expects (samples, {', '.join(map(str, self.input_shape))})"
                + (f"; reshape it to one row of {self.input_dim} features per sample" if len(self.input_shape) == 1
                   else "")
            )
        if shape[0] == 0:
            raise DataError(f"{what} is empty: there are no samples to work on")
        if getattr(x, "dtype", None) is not None and x.dtype.kind not in "fiub":
            raise DataError(f"{what} has dtype {x.dtype}; expected numbers")
        device_x = backend.xp.ascontiguousarray(backend.asarray(x, dtype=self.dtype)).reshape(shape[0], -1)
        if not bool(backend.xp.isfinite(device_x).all()):
            raise DataError(f"{what} contains NaN or infinite values; clean or impute them before training")
        return device_x

    def device_data(self, x: Any, y: Any, names: tuple[str, str] = ("x", "y")) -> tuple[Any, Any]:
        """Features and targets as checked device arrays (flat rows in the model's dtype, target rows); ``names``
        name them in errors."""
        x_dev = self._features(x, names[0])
        return x_dev, self._targets(y, x_dev.shape[0], names[1])

    def _targets(self, y: Any, n: int, what: str = "y") -> Any:
        """Targets as a device array (n, outputs): integer class labels become one-hot rows."""
        backend = self.backend
        y_host = np.asarray(backend.to_host(y))
        if y_host.shape[:1] != (n,):
            raise ConfigError(f"{what} has {y_host.shape[0] if y_host.ndim else 0} rows but x has {n} samples")
        if y_host.dtype.kind in "USO":
            y_host = self._label_indices(y_host, what)
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

    def _label_indices(self, labels: np.ndarray, what: str) -> np.ndarray:
        """Class-name labels as indices into ``class_names``; a model without class names takes the labels' sorted
        distinct names as its own (saved with it, and printed by ``xpnet predict``)."""
        values = labels.tolist() if labels.ndim == 1 else None
        if values is None or not all(isinstance(value, str) for value in values):
            raise DataError(f"{what} holds {labels.dtype} values that are neither numbers nor class names; give "
                            "integer labels 0..k-1, class names (strings) or one-hot rows")
        if self.is_regression:
            raise DataError(f"{what} holds class names, but this model predicts values (loss {self.loss.name} after "
                            "an identity output); give numeric targets, or a softmax/sigmoid classifier")
        names = self.class_names or sorted(set(values))
        if len(names) != self._class_count():
            raise DataError(f"{what} names {len(names)} classes, but the model has {self._class_count()}; give the "
                            f"model class_names=[...] or an output layer of {len(names)} units")
        index = {name: i for i, name in enumerate(names)}
        unknown = next((value for value in values if value not in index), None)
        if unknown is not None:
            raise DataError(f"{what} has label {unknown!r}, which is not one of the model's classes {names}")
        self.class_names = list(names)
        return np.fromiter((index[value] for value in values), dtype=np.int64, count=len(values))

    def workspace(self, capacity: int, backward: bool) -> ModelWorkspace:
        """Preallocated buffers for batches of up to ``capacity`` rows (with what a backward pass needs)."""
        key = (capacity, backward)
        if key not in self._workspaces:
            empty = self.backend.empty
            layers = [layer.workspace(capacity, backward, backward and self.needs_input_gradient(i))
                      for i, layer in enumerate(self.layers)]
            x = empty((capacity, self.input_dim)) if backward else None
            y = empty((capacity, self.output_dim)) if backward else None
            self._workspaces = {k: v for k, v in self._workspaces.items() if k[1] != backward}
            self._workspaces[key] = ModelWorkspace(x, y, layers, empty((capacity, self.output_dim)))
        return self._workspaces[key]

    def needs_input_gradient(self, i: int) -> bool:
        """Whether layer ``i``'s backward pass must compute dL/d(input): only when a trainable layer is below it."""
        return self._first_trainable is not None and i > self._first_trainable

    # ---------------------------------------------------------------------------------------------- compute
    def forward(self, x: Any, workspace: ModelWorkspace, phase: Phase) -> Any:
        """The output for a batch of flat input rows ``x``; every layer keeps what its backward pass needs."""
        a = x.reshape(x.shape[0], *self.input_shape)
        for layer, ws in zip(self.layers, workspace.layers, strict=True):
            a = layer.forward(a, ws, phase)
        return a

    def _loss(self, workspace: ModelWorkspace, output: Any, y: Any, stats: Any) -> None:
        """The loss's gradient into ``workspace.dy`` (dL/dz for a fused loss), with loss and correct count added to
        ``stats``."""
        z = workspace.layers[-1].batch.get("z", output)
        self.loss.gradient(self.backend.kernels, z, output, y, workspace.dy, stats)

    def backward(self, workspace: ModelWorkspace) -> None:
        """Gradients of every parameter into the flat gradient row, from the loss gradient in ``workspace.dy``."""
        dy = workspace.dy
        if self._first_trainable is None:
            return
        for i in range(len(self.layers) - 1, self._first_trainable - 1, -1):
            dy = self.layers[i].backward(dy, workspace.layers[i], self.needs_input_gradient(i))

    def compute_gradients(self, x: Any, y: Any, workspace: ModelWorkspace, stats: Any,
                          training: bool = True) -> None:
        """Forward, loss and backward for the batch ``x``, ``y`` (device arrays: flat rows, target rows): the
        gradients land in ``self.buffer[1]``, the loss and correct count are added to ``stats``."""
        output = self.forward(x, workspace, Phase(training, self.step, self.stream))
        self._loss(workspace, output, y, stats)
        self.backward(workspace)

    def train_step(self, x: Any, y: Any, workspace: ModelWorkspace, stats: Any,
                   reduce: Callable[[Any], None] | None = None) -> None:
        """One optimizer step on the batch ``x``, ``y`` (device arrays of the model's dtype); ``reduce``, when
        given, combines the flat gradient row in place before the update (the ranks' mean, in data parallelism)."""
        self.compute_gradients(x, y, workspace, stats)
        if reduce is not None:
            reduce(self.buffer[1])
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
        validation_data: tuple[Any, Any] | ChunkedData | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int = 1,
        callbacks: Sequence[Callback] = (),
        history: History | None = None,
        position: TrainingPosition | None = None,
        lr_schedule: Callable[[float], float] | None = None,
        communicator: Communicator | None = None,
    ) -> History:
        """Train for ``epochs`` epochs and return the per-epoch History.

        ``batch_size`` None trains full-batch, 1 online. ``validation_split`` holds out the last fraction of the
        samples (before shuffling), like Keras. ``seed`` fixes the shuffling order. Each callback is called as
        ``callback(model, epoch, logs)`` after every epoch; setting ``model.stop_training`` (from a callback or a
        signal handler) stops after the current step. ``history`` and ``position`` continue an earlier run (see
        ``xpnet.checkpoint``), ``epochs`` counting from its start; ``self.position`` always says where training
        stands. ``lr_schedule(progress)`` sets the learning rate before every step, ``progress`` being the epochs
        done so far (0-based, fractional: epoch + batches done / batches per epoch), so a decay is smooth even over
        one epoch; a schedule of ``int(progress)`` changes once per epoch. With a ``communicator``
        (``xpnet.distributed``) this is one rank of a data-parallel run over the same ``x``, ``y``: each rank steps
        on its share of every batch of ``batch_size`` rows.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {epochs!r}")
        with self.backend.out_of_memory(batch_size or len(x)):
            if isinstance(x, ChunkedData):
                if y is not None or validation_split:
                    raise ConfigError("streamed (chunked) data carries its labels: give y=None and no "
                                      "validation_split (hold out a test set as validation_data instead)")
                x_all, y_all = x, None
            else:
                x_all, y_all = self.device_data(x, y)
            if validation_data is not None and validation_split:
                raise ConfigError("give validation_data or validation_split, not both")
            if not 0.0 <= validation_split < 1.0:
                raise ConfigError(f"validation_split must be in [0, 1), got {validation_split!r}")
            if validation_data is not None:
                val_x, val_y = validation_data if isinstance(validation_data, tuple) else (validation_data, None)
                validation_data = val_x if isinstance(val_x, ChunkedData) else self.device_data(
                    val_x, val_y, ("validation x", "validation y"))
            if validation_split:
                n_val = int(round(x_all.shape[0] * validation_split))
                if n_val < 1 or n_val >= x_all.shape[0]:
                    raise ConfigError(f"validation_split {validation_split} leaves no training or validation samples")
                validation_data = (x_all[-n_val:], y_all[-n_val:])
                x_all, y_all = x_all[:-n_val], y_all[:-n_val]
            if batch_size is None:
                batch_size = len(x_all)
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ConfigError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
            if seed is not None:
                self.shuffle_rng = np.random.default_rng(seed)
            trainer = Trainer(
                self, x_all, y_all, batch_size, validation=validation_data, shuffle=shuffle, verbose=verbose,
                callbacks=callbacks, history=history, position=position, lr_schedule=lr_schedule,
                communicator=communicator,
            )
            return trainer.run(epochs)

    def _forward_in_chunks(self, x_dev: Any) -> Iterator[tuple[int, int, ModelWorkspace, Any]]:
        """Inference passes over ``x_dev`` in chunks of at most PREDICT_CHUNK rows: (first row, end row, workspace,
        output)."""
        n = x_dev.shape[0]
        workspace = self.workspace(min(n, PREDICT_CHUNK), backward=False)
        for lo in range(0, n, PREDICT_CHUNK):
            hi = min(n, lo + PREDICT_CHUNK)
            chunk = workspace.first(hi - lo)
            yield lo, hi, chunk, self.forward(x_dev[lo:hi], chunk, Phase(training=False, step=self.step))

    def predict_proba(self, x: Any) -> np.ndarray:
        """The output layer's activations (class probabilities for softmax/sigmoid outputs), as a host array."""
        x_dev = self._features(x)
        out = np.empty((x_dev.shape[0], self.output_dim), dtype=self.dtype)
        for lo, hi, _, output in self._forward_in_chunks(x_dev):
            out[lo:hi] = self.backend.to_host(output)
        return out

    def predict(self, x: Any) -> np.ndarray:
        """Class indices: the argmax of the outputs, or output >= 0.5 for a single-output model; a regression model's
        values (one column per output, or a vector for a single output)."""
        proba = self.predict_proba(x)
        if self.is_regression:
            return proba[:, 0] if self.output_dim == 1 else proba
        if self.output_dim == 1:
            return (proba[:, 0] >= 0.5).astype(np.int64)
        return proba.argmax(axis=1)

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """Mean loss and accuracy on ``x``, ``y`` (class labels or target rows); for a regression model mean loss,
        mean squared error and mean absolute error (over samples and outputs). ``x`` may be a ChunkedData (``y``
        None), evaluated one chunk on the device at a time."""
        if not isinstance(x, ChunkedData):
            return self.evaluate_on_device(*self.device_data(x, y))
        totals: dict[str, float] = {}
        for chunk in x:
            rows = len(chunk[1])
            for name, value in self.evaluate_on_device(*self.device_data(*chunk, ("a chunk", "its labels"))).items():
                totals[name] = totals.get(name, 0.0) + value * rows
        return {name: total / len(x) for name, total in totals.items()}

    def evaluate_on_device(self, x_dev: Any, y_dev: Any) -> dict[str, float]:
        """``evaluate`` for arrays already checked and on the device (flat rows, target rows)."""
        stats = self.backend.zeros(2, dtype=np.float64)
        errors = self.backend.zeros(2, dtype=np.float64)  # regression: sums of squared and absolute errors
        regression = self.is_regression
        for lo, hi, chunk, output in self._forward_in_chunks(x_dev):
            self._loss(chunk, output, y_dev[lo:hi], stats)
            if regression:
                error = output - y_dev[lo:hi]
                errors[0] += (error * error).sum()
                errors[1] += abs(error).sum()
        loss_sum, correct = (float(v) for v in self.backend.to_host(stats))
        n = x_dev.shape[0]
        if regression:
            squared, absolute = (float(v) / (n * self.output_dim) for v in self.backend.to_host(errors))
            return {"loss": loss_sum / n, "mse": squared, "mae": absolute}
        return {"loss": loss_sum / n, "accuracy": correct / n}

    def save(self, path: Any, include_optimizer: bool = True) -> Any:
        """Save to ``path`` (``.npz``) atomically, without pickle; ``xpnet.load_model`` reads it on either device."""
        from xpnet.serialization import save_model

        return save_model(self, path, include_optimizer)

    def config(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-serialisable data (see ``xpnet.serialization``)."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [layer.config() for layer in self.layers],
            "loss": self.loss.name,
            "optimizer": self.optimizer.config(),
            "dtype": self.dtype.name,
            "class_names": self.class_names,
            "preprocessing": self.preprocessing,
            "step": self.step,
        }


Sequential = Model
"""Keras's name for a model that is a sequence of layers: ``Sequential([...], input_shape=784)``."""
