"""Training recipes for ``xpnet train mnist --recipe NAME``: a network and the settings that train it to a record.

A recipe is settings over the task's defaults for its model kind (explicit flags override them) plus the layers it
builds from those settings, which read ``hidden``, ``filters``, ``dropout`` and ``shift``:

- ``mlp``: an MLP (no convolutions) on images shifted up to 2 pixels: 784-1024-1024-10, ReLU, dropout, AdamW with
  one-cycle and label smoothing (the dropout paper's 3x1024 MLP with max-norm reached 1.06% error without
  augmentation; Simard et al. 2003 showed shifts and distortions take an MLP under 1%);
- ``cnn``: three conv -> BatchNorm -> ReLU -> max-pool stages (32, 64, 128 filters), a 256-unit layer with dropout,
  random shifts, AdamW with one-cycle and label smoothing;
- ``tiny-cnn``: under 10,000 parameters: five bias-free 3x3 convolutions (8, 16 | pool | 16, 16, 16), each
  followed by BatchNorm and ReLU, then global average pooling and a softmax layer, as the small-CNN course
  designs that reach 99.4% in 15 epochs; Adam with one-cycle, shifts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xpnet.errors import ConfigError
from xpnet.layers import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    RandomShift,
    Reshape,
)

Images = tuple[int, int, int]

NO_RECIPE = "none"
"""``--recipe none``: the task's plain network for ``--model`` even where a recipe is that kind's default."""


@dataclass(frozen=True)
class Spec:
    """What a recipe's layers are built from: the settings ``hidden`` and ``filters`` (parsed), ``dropout``,
    ``shift``, and the task's image shape and class count."""

    hidden: list[int]
    filters: list[int]
    dropout: float
    shift: int
    image: Images
    classes: int


def _input(image: Images, shift: int) -> list[Layer]:
    """The Reshape of a flat row into its image, and a RandomShift of up to ``shift`` pixels when above 0."""
    return [Reshape(image), *([RandomShift(shift)] if shift else [])]


def _conv_bn_relu(filters: int, padding: str) -> list[Layer]:
    """A bias-free 3x3 convolution (BatchNorm's shift is its bias), BatchNorm and ReLU. The running statistics
    average over about the last 10 batches (PyTorch's default momentum), so they follow the one-cycle annealing."""
    return [Conv2D(filters, 3, padding=padding, bias=False), BatchNorm(momentum=0.9), Activation("relu")]


def _dropout(spec: Spec) -> list[Layer]:
    return [Dropout(spec.dropout)] if spec.dropout else []


def mlp_layers(spec: Spec) -> list[Layer]:
    """The shifted images flattened, then ``hidden`` ReLU layers each followed by dropout, then softmax."""
    layers = [*_input(spec.image, spec.shift), Flatten()] if spec.shift else []
    for units in spec.hidden:
        layers += [Dense(units, "relu"), *_dropout(spec)]
    return [*layers, Dense(spec.classes, "softmax")]


def cnn_layers(spec: Spec) -> list[Layer]:
    """Per entry of ``filters`` a conv -> BatchNorm -> ReLU -> 2x2 max-pool stage ("same" padding), then dropout,
    ``hidden`` ReLU layers each followed by dropout, and softmax."""
    layers = _input(spec.image, spec.shift)
    for filters in spec.filters:
        layers += [*_conv_bn_relu(filters, "same"), MaxPool2D(2)]
    layers += [Flatten(), *_dropout(spec)]
    for units in spec.hidden:
        layers += [Dense(units, "relu"), *_dropout(spec)]
    return [*layers, Dense(spec.classes, "softmax")]


def tiny_cnn_layers(spec: Spec) -> list[Layer]:
    """conv -> BatchNorm -> ReLU blocks ("valid" padding) with ``filters``: a 2x2 max-pool after the second, dropout
    after each from the third; global average pooling and a softmax layer (``hidden`` unused)."""
    if len(spec.filters) < 3:
        raise ConfigError(f"--filters {spec.filters}: the tiny CNN needs at least 3 convolutions")
    layers = _input(spec.image, spec.shift)
    for i, count in enumerate(spec.filters):
        layers += _conv_bn_relu(count, "valid")
        if i == 1:
            layers.append(MaxPool2D(2))
        elif i > 1:
            layers += _dropout(spec)
    return [*layers, GlobalAvgPool2D(), Dense(spec.classes, "softmax")]


@dataclass(frozen=True)
class Recipe:
    """A recipe: the model kind whose task defaults it starts from, its settings over them, and its layers."""

    model: str
    settings: dict[str, Any]
    layers: Callable[[Spec], list[Layer]]
    summary: str


_ONE_CYCLE = {"schedule": "onecycle", "batch_size": 128, "validation_split": 0.0}

RECIPES: dict[str, Recipe] = {
    "mlp": Recipe("mlp", {**_ONE_CYCLE, "hidden": "1024,1024", "dropout": 0.3, "shift": 2, "epochs": 50,
                          "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05, "label_smoothing": 0.1},
                  mlp_layers, "784-1024-1024-10 MLP, dropout 0.3, shifts of 2 px, AdamW one-cycle, 50 epochs"),
    "cnn": Recipe("cnn", {**_ONE_CYCLE, "filters": "32,64,128", "hidden": "256", "dropout": 0.3, "shift": 2,
                          "epochs": 20, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05,
                          "label_smoothing": 0.1},
                  cnn_layers, "3 conv-BN-ReLU-pool stages (32,64,128), 256 units, shifts, AdamW one-cycle, 20 "
                              "epochs"),
    "tiny-cnn": Recipe("cnn", {**_ONE_CYCLE, "filters": "8,16,16,16,16", "hidden": "", "dropout": 0.05,
                               "shift": 2, "epochs": 20, "optimizer": "adam", "lr": 1e-2, "weight_decay": None,
                               "label_smoothing": 0.05},
                       tiny_cnn_layers, "5 bias-free conv-BN-ReLU blocks (8,16 | pool | 16,16,16), global average "
                                        "pooling, under 10k parameters, Adam one-cycle, 20 epochs"),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ConfigError naming the recipes otherwise."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")
    return RECIPES[name]
