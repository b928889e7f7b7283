"""ONNX export: a model as an ONNX graph that computes what ``Model.predict_proba`` does, for onnxruntime and co.

The graph takes float32 inputs of shape (batch, *input_shape), the rows ``Model.predict`` takes, and outputs the
last layer's activations. xpnet computes channels-last (NHWC) while ONNX's Conv and pools are channels-first
(NCHW): the exporter tracks which layout the current value is in and transposes only where a layer needs the other
one, to NCHW for Conv, MaxPool, AveragePool and GlobalAveragePool, back to NHWC for Flatten and Reshape (whose
value order is xpnet's C order over height, width, channels). Activations (of Dense, Conv2D or an Activation layer)
and BatchNorm work on the channel axis of either layout; BatchNorm becomes its inference form (running statistics),
and Dropout and RandomShift (the identity at inference) disappear. The class names and the preprocessing dict go
into the file's metadata_props as JSON, so a user can prepare inputs as ``xpnet predict`` does.

Needs the ``onnx`` extra (``pip install 'xpnet[onnx]'``); onnxruntime runs the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xpnet import __version__
from xpnet.errors import ExportError
from xpnet.fileio import atomic_write
from xpnet.layers import Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Layer, MaxPool2D, Reshape
from xpnet.model import Model

OPSET = 17
"""The ONNX opset of exported graphs: one that every maintained runtime loads."""

INPUT, OUTPUT = "input", "output"
"""The graph's input (float32 feature rows) and output (what ``predict_proba`` gives) names."""

ACTIVATION_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "leaky_relu": "LeakyRelu",
                  "softmax": "Softmax"}
"""The ONNX operator of every activation but identity (which needs none)."""


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package, which is not installed",
                          hint="pip install 'xpnet[onnx]'") from None
    return onnx


class _Graph:
    """The nodes and initialisers of a graph being built, and its current value: the name of the last node's
    output, and whether that value is laid out channels-first (NCHW) or, as xpnet has it, channels-last."""

    def __init__(self, onnx: Any, backend: Any) -> None:
        self.onnx, self.backend = onnx, backend
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.value, self.channels_first = INPUT, False

    def host(self, values: Any) -> np.ndarray:
        """A layer's parameter or state array, on the host."""
        return self.backend.to_host(values)

    def constant(self, name: str, values: Any, dtype: Any = np.float32) -> str:
        """An initialiser holding ``values`` (a host or device array) as ``dtype``; returns its name."""
        array = np.asarray(self.host(values), dtype=dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def apply(self, op: str, name: str, *inputs: str, **attributes: Any) -> None:
        """A node ``op`` on the current value (and ``inputs``); its output, called ``name``, becomes current."""
        self.nodes.append(self.onnx.helper.make_node(op, [self.value, *inputs], [name], name=name, **attributes))
        self.value = name

    def layout(self, channels_first: bool, name: str) -> None:
        """Transpose the current (batch, H, W, C) value to NCHW, or back to NHWC, unless it is laid out so."""
        if self.channels_first != channels_first:
            perm = [0, 3, 1, 2] if channels_first else [0, 2, 3, 1]
            self.apply("Transpose", f"{name}/to_{'nchw' if channels_first else 'nhwc'}", perm=perm)
            self.channels_first = channels_first

    @property
    def channel_axis(self) -> int:
        return 1 if self.channels_first else -1


def _activation(graph: _Graph, layer: Dense | Conv2D | Activation, name: str) -> None:
    kind = layer.activation
    if kind == "identity":
        return
    if kind not in ACTIVATION_OPS:
        raise ExportError(f"its activation {kind!r} has no ONNX form; exportable activations: identity, "
                          f"{', '.join(ACTIVATION_OPS)}")
    attributes = {"leaky_relu": {"alpha": float(layer.alpha)}, "softmax": {"axis": graph.channel_axis}}.get(kind, {})
    graph.apply(ACTIVATION_OPS[kind], f"{name}/{kind}", **attributes)


def _bias(graph: _Graph, layer: Dense | Conv2D, name: str) -> list[str]:
    return [graph.constant(f"{name}/b", layer.params["b"])] if layer.bias else []


def _dense(graph: _Graph, layer: Dense, name: str) -> None:
    graph.apply("Gemm", f"{name}/gemm", graph.constant(f"{name}/W", layer.params["W"]), *_bias(graph, layer, name))
    _activation(graph, layer, name)


def _conv2d(graph: _Graph, layer: Conv2D, name: str) -> None:
    """xpnet's W is (KH*KW*C, filters) over (kh, kw, c) patch rows; ONNX's is (filters, C, KH, KW). Padding is
    explicit: xpnet's leading pads, and at the end whatever the last window reaches past the input."""
    graph.layout(True, name)
    (kh, kw), (height, width, channels) = layer.kernel_size, layer.input_shape
    weights = graph.host(layer.params["W"]).reshape(kh, kw, channels, layer.filters).transpose(3, 2, 0, 1)
    ends = [max((out - 1) * stride + window - size - begin, 0) for out, stride, window, size, begin in
            zip(layer.conv_shape[:2], layer.strides, layer.kernel_size, (height, width), layer.pads, strict=True)]
    graph.apply("Conv", f"{name}/conv", graph.constant(f"{name}/W", weights), *_bias(graph, layer, name),
                kernel_shape=[kh, kw], strides=list(layer.strides), pads=[*layer.pads, *ends])
    _activation(graph, layer, name)
    if layer.max_pool is not None:
        graph.apply("MaxPool", f"{name}/maxpool", kernel_shape=list(layer.max_pool), strides=list(layer.max_pool))


def _max_pool(graph: _Graph, layer: MaxPool2D, name: str) -> None:
    graph.layout(True, name)
    graph.apply("MaxPool", f"{name}/maxpool", kernel_shape=list(layer.pool_size), strides=list(layer.strides))


def _avg_pool(graph: _Graph, layer: AvgPool2D, name: str) -> None:
    graph.layout(True, name)
    graph.apply("AveragePool", f"{name}/avgpool", kernel_shape=list(layer.pool_size), strides=list(layer.strides))


def _global_avg_pool(graph: _Graph, layer: Layer, name: str) -> None:
    """GlobalAveragePool gives (batch, C, 1, 1); flattened, that is xpnet's (batch, C) in either layout."""
    graph.layout(True, name)
    graph.apply("GlobalAveragePool", f"{name}/globalavgpool")
    graph.apply("Flatten", f"{name}/flatten", axis=1)
    graph.channels_first = False


def _flatten(graph: _Graph, layer: Layer, name: str) -> None:
    graph.layout(False, name)
    graph.apply("Flatten", f"{name}/flatten", axis=1)


def _reshape(graph: _Graph, layer: Reshape, name: str) -> None:
    graph.layout(False, name)
    shape = graph.constant(f"{name}/shape", [0, *layer.target_shape], np.int64)  # 0: keep the batch size
    graph.apply("Reshape", f"{name}/reshape", shape)


def _batch_norm(graph: _Graph, layer: BatchNorm, name: str) -> None:
    """Inference form, ``x * scale + shift`` per channel (runtimes fold it into a Conv or Gemm before it)."""
    host, p, s = graph.host, layer.params, layer.state
    scale = host(p["gamma"]) / np.sqrt(host(s["running_var"]).astype(np.float64) + layer.epsilon)
    shift = host(p["beta"]) - host(s["running_mean"]) * scale
    per_channel = (-1, 1, 1) if graph.channels_first else (-1,)
    graph.apply("Mul", f"{name}/mul", graph.constant(f"{name}/scale", scale.reshape(per_channel)))
    graph.apply("Add", f"{name}/add", graph.constant(f"{name}/shift", shift.reshape(per_channel)))


def _training_only(graph: _Graph, layer: Layer, name: str) -> None:
    """Dropout and RandomShift are the identity at inference: nothing to export."""


CONVERTERS: dict[str, Callable[[_Graph, Any, str], None]] = {
    "dense": _dense,
    "conv2d": _conv2d,
    "maxpool2d": _max_pool,
    "avgpool2d": _avg_pool,
    "globalavgpool2d": _global_avg_pool,
    "activation": _activation,
    "flatten": _flatten,
    "reshape": _reshape,
    "batchnorm": _batch_norm,
    "dropout": _training_only,
    "random_shift": _training_only,
}
"""How each exportable layer type (by its registry name) becomes ONNX nodes."""


def onnx_model(model: Model) -> Any:
    """``model`` as an ``onnx.ModelProto`` (float32, opset ``OPSET``) that has passed ``onnx.checker``; an
    ExportError names the first layer or activation without an ONNX form."""
    onnx = _import_onnx()
    helper = onnx.helper
    graph = _Graph(onnx, model.backend)
    for index, layer in enumerate(model.layers):
        convert = CONVERTERS.get(layer.type_name)
        if convert is None:
            raise ExportError(f"layer {index} ({layer.type_name}) has no ONNX form; exportable layers: "
                              f"{', '.join(CONVERTERS)}")
        try:
            convert(graph, layer, f"layer{index}_{layer.type_name}")
        except ExportError as exc:
            raise ExportError(f"layer {index} ({layer.type_name}) cannot be exported: {exc}") from None
    graph.apply("Identity", OUTPUT)
    float32 = onnx.TensorProto.FLOAT
    proto = helper.make_model_gen_version(
        helper.make_graph(
            graph.nodes, "xpnet", [helper.make_tensor_value_info(INPUT, float32, ["batch", *model.input_shape])],
            [helper.make_tensor_value_info(OUTPUT, float32, ["batch", model.output_dim])], graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xpnet", producer_version=__version__,
        doc_string=f"{model!r}; outputs what Model.predict_proba gives",
    )
    helper.set_model_props(proto, {"class_names": json.dumps(model.class_names),
                                   "preprocessing": json.dumps(model.preprocessing)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model: Model, path: str | Path) -> Path:
    """Export ``model`` to the ONNX file ``path``, written atomically (nothing is written when export fails)."""
    proto = onnx_model(model)
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())
    return path
