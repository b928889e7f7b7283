"""The network: a sequence of layers over one flat parameter buffer, with a loss and an optimizer, on one backend.

Parameters, gradients and optimizer moments live in one ``(2 + slots, P)`` array: row 0 the parameters, row 1
their gradients, the rest the optimizer's moments; non-trainable state (BatchNorm's running statistics) in a second
flat array. Each layer gets views into them, so the optimizer updates everything in one pass and an Allreduce of
the gradients is one call. The model only sequences layers: each layer computes its own forward and backward pass
in work buffers preallocated per batch size. The training loop lives in ``xpnet.trainer`` (``fit`` builds a
``Trainer``, which owns the run's position, shuffling and stop flag), the input checks in ``xpnet.inputs``, saving
in ``xpnet.archive``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet import inputs
from xpnet.archive import save_model
from xpnet.backend import Backend, get_backend
from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, as_shape, describe_shape
from xpnet.losses import Loss, get_loss
from xpnet.metrics import get_metrics
from xpnet.optimizers import DecayTargets, Optimizer, get_optimizer
from xpnet.trainer import Callback, ChunkedData, FitOptions, History, StopFlag, Trainer, TrainingPosition

if TYPE_CHECKING:
    from xpnet.distributed import Communicator

PREDICT_CHUNK = 8192
"""The most rows per forward pass in predict and evaluate (fewer where the backend's ``inference_bytes`` says)."""


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
    the initial weights, dropout masks and the shuffling order, identically on every device. ``lr`` is the
    optimizer's base learning rate (give ``optimizer=Adam(lr, schedule=Cosine(epochs))`` for a schedule).
    ``class_names`` and ``preprocessing`` are carried along for saving: the CLI uses them to turn inputs into
    features and outputs into names (``predict`` returns the names too). ``metrics`` names what ``evaluate`` and
    ``fit`` report beside the loss (``xpnet.metrics``; default: accuracy, or MSE and MAE for regression).
    ``compile`` changes the loss, optimizer and metrics later, Keras-style; ``model(x)`` is ``predict_proba``, and
    ``get_weights`` / ``set_weights`` read and write every layer's arrays as Keras lists them.
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
        metrics: Sequence[str] | None = None,
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
        self._set_loss(get_loss(loss))
        self.metrics = get_metrics(metrics, self.is_regression)
        """The metrics ``evaluate`` and ``fit`` report beside the loss (``xpnet.metrics``)."""
        self.optimizer = get_optimizer(optimizer, lr)
        self.backend = backend or get_backend(device, dtype, seed, kernel_mode)
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self.class_count:
            raise ConfigError(f"{len(self.class_names)} class names given for {self.class_count} classes")
        self.preprocessing = dict(preprocessing or {})
        self.step = 0
        """Optimizer steps applied so far (Adam's bias correction and the dropout masks depend on it)."""
        self.trainer: Trainer | None = None
        """The trainer of the current (or latest) ``fit``: its ``position`` says where training stands."""
        self._workspaces: dict[tuple[int, bool], ModelWorkspace] = {}
        self._inference_row_bytes: int | None = None
        self._first_trainable = next((i for i, layer in enumerate(self.layers) if layer.parameter_count), None)
        self._bind_buffers()
        self._initialize()

    def _set_loss(self, loss: Loss) -> None:
        """Take ``loss`` after checking it suits the output layer, fused with its activation when it can be."""
        last = self.layers[-1]
        loss.check_output(getattr(last, "activation", "identity"))
        self.loss = loss
        last.fused_with_loss = loss.gives_dz

    def compile(
        self,
        optimizer: str | dict | Optimizer | None = None,
        loss: str | Loss | None = None,
        metrics: Sequence[str] | None = None,
        *,
        lr: float | None = None,
    ) -> Model:
        """Keras's ``compile``: choose the optimizer (a name, with ``lr``, or an object such as
        ``xpnet.optimizers.Adam(lr=1e-3)``), the loss and the metrics; those left None stay as they are (metrics:
        the defaults for the new loss). The parameters are kept; a new optimizer starts with fresh moments and a
        step count of 0, as Keras's does. Everything is checked before anything changes. Returns the model."""
        new_loss = self.loss if loss is None else get_loss(loss)
        new_optimizer = (self.optimizer if optimizer is None and lr is None
                         else get_optimizer(self.optimizer if optimizer is None else optimizer, lr))
        if new_loss is not self.loss:
            new_loss.check_output(getattr(self.layers[-1], "activation", "identity"))
        new_metrics = get_metrics(metrics, self._predicts_values(new_loss))
        self._set_loss(new_loss)
        self.metrics = new_metrics
        if new_optimizer is not self.optimizer:
            parameters, state = self.get_parameters(), self.get_state()
            self.optimizer, self.step = new_optimizer, 0
            self._bind_buffers()
            self.set_parameters(parameters)
            self.set_state(state)
        self._workspaces.clear()
        return self

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
        return self._predicts_values(self.loss)

    def _predicts_values(self, loss: Loss) -> bool:
        """Whether this model with ``loss`` is a regression model (see ``is_regression``)."""
        return loss.name in ("mse", "sse") and getattr(self.layers[-1], "activation", "identity") == "identity"

    @property
    def class_count(self) -> int:
        """Classes a classifier tells apart (a single sigmoid output tells two)."""
        return max(2, self.output_dim)

    @property
    def position(self) -> TrainingPosition | None:
        """Where the current or latest ``fit`` stands (None before any): the latest trainer's position."""
        return None if self.trainer is None else self.trainer.position

    @property
    def stop_training(self) -> bool:
        """Keras's stop request, kept for callbacks: True once the running ``fit`` was asked to stop. Setting it
        asks (or stops asking) that fit's trainer; outside a fit it has no effect, as each fit starts afresh."""
        return self.trainer is not None and self.trainer.stop.requested

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        if self.trainer is not None:
            (self.trainer.stop.request if value else self.trainer.stop.clear)()

    def _bind_buffers(self) -> None:
        """Allocate the flat buffers and hand every layer its views of its parameters, gradients and state."""
        backend = self.backend
        self.buffer = backend.zeros((2 + self.optimizer.slots, self.parameter_count))
        self.state = backend.zeros(self.state_count)
        offset, state_offset = 0, 0
        mask, weights = np.zeros(self.parameter_count), []
        for layer in self.layers:
            params, grads, state = {}, {}, {}
            for name, shape in layer.parameter_shapes().items():
                size = math.prod(shape)
                params[name] = self.buffer[0, offset : offset + size].reshape(shape)
                grads[name] = self.buffer[1, offset : offset + size].reshape(shape)
                if name in layer.decayed:
                    mask[offset : offset + size] = 1.0
                    weights.append(params[name])
                offset += size
            for name, shape in layer.state_shapes().items():
                size = math.prod(shape)
                state[name] = self.state[state_offset : state_offset + size].reshape(shape)
                state_offset += size
            layer.bind(backend, params, grads, state)
        self.decay_targets = DecayTargets(backend.asarray(mask, dtype=self.dtype), weights,
                                          backend.zeros(1, dtype=np.float64))
        """What the optimizer's weight decay, clipping and max-norm act on (Dense and Conv2D kernels only)."""

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

    def get_weights(self) -> list[np.ndarray]:
        """Keras's ``get_weights``: every layer's arrays (``Layer.get_weights``: kernel, then bias, then running
        statistics), layer after layer, in one list of host copies."""
        return [array for layer in self.layers for array in layer.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Overwrite every layer's arrays from a list like ``get_weights()``'s; ConfigError naming the first array
        of the wrong count or shape, before anything is changed."""
        counts = [len(layer.get_weights()) for layer in self.layers]
        if not isinstance(weights, (list, tuple)) or len(weights) != sum(counts):
            got = f"{len(weights)}" if isinstance(weights, (list, tuple)) else f"a {type(weights).__name__}"
            raise ConfigError(f"set_weights needs a list of {sum(counts)} arrays (get_weights() gives them in "
                              f"order), got {got}")
        parameters, state = self.get_parameters(), self.get_state()
        start = 0
        try:
            for i, (layer, count) in enumerate(zip(self.layers, counts, strict=True)):
                try:
                    layer.set_weights(list(weights[start : start + count]))
                except ConfigError as exc:
                    raise ConfigError(f"layer {i}: {exc}") from None
                start += count
        except ConfigError:
            self.set_parameters(parameters)
            self.set_state(state)
            raise

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
            f"loss {self.loss.name}; optimizer {self.optimizer.describe()}; "
            f"{self.backend.name} {self.dtype.name}, {self.backend.kernel_mode} kernels",
        ])
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        kinds = "-".join(layer.type_name for layer in self.layers)
        return (f"Model({describe_shape(self.input_shape)} {kinds} -> {self.output_dim}, loss={self.loss.name}, "
                f"optimizer={self.optimizer.name}, device={self.backend.name})")

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
                          training: bool = True, stream: int = 0) -> None:
        """Forward, loss and backward for the batch ``x``, ``y`` (device arrays: flat rows, target rows): the
        gradients land in ``self.buffer[1]``, the loss and correct count are added to ``stats``. ``stream`` is the
        rank of a data-parallel run this step runs as: each draws its own dropout masks."""
        output = self.forward(x, workspace, Phase(training, self.step, stream))
        self._loss(workspace, output, y, stats)
        self.backward(workspace)

    def train_step(self, x: Any, y: Any, workspace: ModelWorkspace, stats: Any,
                   reduce: Callable[[Any], None] | None = None, *, progress: float = 0.0, stream: int = 0) -> None:
        """One optimizer step on the batch ``x``, ``y`` (device arrays of the model's dtype); ``reduce``, when
        given, combines the flat gradient row in place before the update (the ranks' mean, in data parallelism).
        ``progress`` (epochs done, fractional) is what the optimizer's schedule reads; ``stream`` the rank."""
        self.compute_gradients(x, y, workspace, stats, stream=stream)
        if reduce is not None:
            reduce(self.buffer[1])
        self.step += 1
        self.optimizer.update(self.backend.kernels, self.buffer[0], self.buffer[1], self.buffer[2:], self.step,
                              progress, self.decay_targets)

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
        stop: StopFlag | None = None,
        communicator: Communicator | None = None,
        graph: bool | str = "auto",
    ) -> History:
        """Train for ``epochs`` epochs and return the per-epoch History (the keywords become one ``FitOptions``
        for a ``Trainer``, which runs the loop).

        ``batch_size`` None trains full-batch, 1 online. ``validation_split`` holds out the last fraction of the
        samples (before shuffling), like Keras. ``seed`` fixes the shuffling order (else it is drawn from the
        model's seeded backend). Each callback is called as ``callback(model, epoch, logs)`` after every epoch (and
        ``callback.on_epoch_begin(model, epoch)``, when it has one, before each; see ``xpnet.callbacks``);
        setting ``model.stop_training`` from a callback, or requesting ``stop`` (a ``StopFlag``, e.g. from a
        signal handler), stops after the current step. ``history`` and ``position`` continue an earlier run (see
        ``xpnet.checkpoint``), ``epochs`` counting from its start; ``self.position`` says where training stands.
        The learning rate, and its schedule, are the optimizer's. With a ``communicator`` (``xpnet.distributed``)
        this is one rank of a data-parallel run over the same ``x``, ``y``: each rank steps on its share of every
        batch of ``batch_size`` rows. ``graph`` ("auto", "on", "off" or a bool) records one step and replays it
        (``xpnet.graph_step``: a CUDA graph on the GPU, its kernel calls on the CPU): auto where it can (fused
        kernels, no per-step random layers, one process); ``self.trainer.graph_status`` says whether it did.
        """
        options = FitOptions(epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                             validation_split=validation_split, shuffle=shuffle, seed=seed, verbose=verbose,
                             callbacks=callbacks, history=history, position=position, stop=stop,
                             communicator=communicator, graph=graph)
        options.check()
        with self.backend.out_of_memory(batch_size or len(x)):
            self.trainer = Trainer(self, x, y, options)
            return self.trainer.run()

    def inference_rows(self) -> int:
        """Rows per inference pass: as many as the backend's ``inference_bytes`` of layer buffers hold (a CNN's patch
        matrices take tens of KB a row, an MLP's activations a few KB), at least 1 and at most PREDICT_CHUNK."""
        if self._inference_row_bytes is None:
            one_row = [layer.workspace(1, False, False).batch.values() for layer in self.layers]
            self._inference_row_bytes = sum(buffer.nbytes for buffers in one_row for buffer in buffers)
        return max(1, min(PREDICT_CHUNK, self.backend.inference_bytes // max(1, self._inference_row_bytes)))

    def _forward_in_chunks(self, x_dev: Any) -> Iterator[tuple[int, int, ModelWorkspace, Any]]:
        """Inference passes over ``x_dev`` in chunks of ``inference_rows`` rows: (first row, end row, workspace,
        output)."""
        n, rows = x_dev.shape[0], self.inference_rows()
        workspace = self.workspace(min(n, rows), backward=False)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            chunk = workspace.first(hi - lo)
            yield lo, hi, chunk, self.forward(x_dev[lo:hi], chunk, Phase(training=False, step=self.step))

    def predict_proba(self, x: Any) -> np.ndarray:
        """The output layer's activations (class probabilities for softmax/sigmoid outputs), as a host array: one
        row per sample, or for one sample without the samples axis (a single row or image) its one row."""
        x, single = inputs.one_sample(self, x)
        x_dev = inputs.features(self, x)
        out = np.empty((x_dev.shape[0], self.output_dim), dtype=self.dtype)
        for lo, hi, _, output in self._forward_in_chunks(x_dev):
            out[lo:hi] = self.backend.to_host(output)
        return out[0] if single else out

    __call__ = predict_proba
    """``model(x)``: the outputs for ``x``, as ``predict_proba`` (a regression model's values as rows)."""

    def predict(self, x: Any, names: bool = True) -> Any:
        """The answer for each sample of ``x``: for a classifier the class (the argmax of the outputs, or output
        >= 0.5 for a single output) as its name when the model has class names (trained on names, given
        ``class_names=``, or trained by the CLI), else as its index: an integer-label model, one whose names are its
        indices ("0", "1", ...: MNIST's), and any with ``names=False`` answer indices; for a regression
        model its values (one column per output, or a vector for a single output). One sample without the samples
        axis (a single row or image) gets one answer: a name, an index or its values."""
        x, single = inputs.one_sample(self, x)
        proba = self.predict_proba(x)
        if self.is_regression:
            answers = proba[:, 0] if self.output_dim == 1 else proba
        else:
            answers = (proba[:, 0] >= 0.5).astype(np.int64) if self.output_dim == 1 else proba.argmax(axis=1)
            if names and self.class_names not in (None, [str(k) for k in range(self.class_count)]):
                answers = np.asarray(self.class_names)[answers]
        return answers[0].item() if single and answers.ndim == 1 else answers[0] if single else answers

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """Mean loss and the model's metrics on ``x``, ``y`` (class labels, class names or target rows): by default
        accuracy, or for a regression model mean squared error and mean absolute error (over samples and outputs).
        ``x`` may be a ChunkedData (``y`` None), evaluated one chunk on the device at a time."""
        if not isinstance(x, ChunkedData):
            return self.evaluate_on_device(*inputs.device_data(self, x, y))
        totals: dict[str, float] = {}
        for chunk in x:
            rows = len(chunk[1])
            checked = inputs.device_data(self, *chunk, ("a chunk", "its labels"))
            for name, value in self.evaluate_on_device(*checked).items():
                totals[name] = totals.get(name, 0.0) + value * rows
        return {name: total / len(x) for name, total in totals.items()}

    def evaluate_on_device(self, x_dev: Any, y_dev: Any) -> dict[str, float]:
        """``evaluate`` for arrays already checked and on the device (flat rows, target rows)."""
        stats = self.backend.zeros(2, dtype=np.float64)
        errors = self.backend.zeros(2, dtype=np.float64)  # sums of squared and absolute errors
        error_metrics = bool({"mse", "mae"} & set(self.metrics))
        for lo, hi, chunk, output in self._forward_in_chunks(x_dev):
            self._loss(chunk, output, y_dev[lo:hi], stats)
            if error_metrics:
                error = output - y_dev[lo:hi]
                errors[0] += (error * error).sum()
                errors[1] += abs(error).sum()
        loss_sum, correct = (float(v) for v in self.backend.to_host(stats))
        n = x_dev.shape[0]
        squared, absolute = (float(v) / (n * self.output_dim) for v in self.backend.to_host(errors))
        values = {"accuracy": correct / n, "mse": squared, "mae": absolute}
        return {"loss": loss_sum / n, **{name: values[name] for name in self.metrics}}

    def save(self, path: Any, include_optimizer: bool = True) -> Any:
        """Save to ``path`` (``.npz``) atomically, without pickle; ``xpnet.load_model`` reads it on either device."""
        return save_model(self, path, include_optimizer)

    def config(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-serialisable data (see ``xpnet.serialization``)."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [layer.config() for layer in self.layers],
            "loss": self.loss.config(),
            "optimizer": self.optimizer.config(),
            "dtype": self.dtype.name,
            "class_names": self.class_names,
            "preprocessing": self.preprocessing,
            "metrics": list(self.metrics),
            "step": self.step,
        }


Sequential = Model
"""Keras's name for a model that is a sequence of layers: ``Sequential([...], input_shape=784)``."""
