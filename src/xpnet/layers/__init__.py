"""Layers, each in its own module with its forward and backward pass; ``LAYER_TYPES`` is the registry by type name.

Adding a layer type means one new module here (a ``Layer`` subclass decorated with ``@register``, which is how saved
models find it), its kernels in a family of ``kernels/``, one import line below, and an ONNX converter in
``xpnet.export.CONVERTERS`` (under the layer's ``type_name``).
"""

from xpnet.layers.activation import Activation
from xpnet.layers.base import LAYER_TYPES, Layer, Phase, Workspace, layer_from_config
from xpnet.layers.batchnorm import BatchNorm
from xpnet.layers.conv import Conv2D
from xpnet.layers.dense import Dense
from xpnet.layers.dropout import Dropout
from xpnet.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from xpnet.layers.shape import Flatten, Reshape
from xpnet.layers.shift import RandomShift

__all__ = [
    "LAYER_TYPES",
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "MaxPool2D",
    "Phase",
    "RandomShift",
    "Reshape",
    "Workspace",
    "layer_from_config",
]
