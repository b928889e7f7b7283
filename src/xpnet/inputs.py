"""Input checks: user data (arrays, lists, class names) into the device arrays a model computes on.

Plain functions of the model they feed (its input shape, outputs, dtype, backend and class names), so that the
model only sequences layers and the trainer, ``predict`` and ``evaluate`` share one set of checks. Each refuses bad
input with one ConfigError or DataError naming what is wrong and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.errors import ConfigError, DataError

if TYPE_CHECKING:
    from xpnet.model import Model


def one_sample(model: Model, x: Any) -> tuple[Any, bool]:
    """``x`` with a samples axis, and whether it was one sample without one: a single row, or a single image
    (``(H, W)`` for a one-channel ``(H, W, 1)`` input too). For a model of one input value a vector stays a column
    of samples, and a scalar is one sample."""
    if getattr(x, "shape", None) is None:
        x = np.asarray(x)
    shape, input_shape = tuple(x.shape), model.input_shape
    if input_shape == (1,):
        return (x.reshape(1), True) if shape == () else (x, False)
    if shape == input_shape or (*shape, 1) == input_shape:
        return x.reshape(1, *input_shape), True
    return x, False


def features(model: Model, x: Any, what: str = "x") -> Any:
    """``x`` as a C-contiguous device array of flat rows in the model's dtype, after checking shape and values."""
    backend, input_shape = model.backend, model.input_shape
    shape = getattr(x, "shape", None)
    if shape is None:
        x = np.asarray(x)
        shape = x.shape
    shape = tuple(shape)
    if len(shape) == 1 and input_shape == (1,):
        x = x.reshape(-1, 1)
        shape = x.shape
    if shape[1:] != input_shape:
        raise ConfigError(
            f"{what} has shape {shape}, but the model expects (samples, {', '.join(map(str, input_shape))})"
            + (f"; reshape it to one row of {model.input_dim} features per sample" if len(input_shape) == 1
               else "")
        )
    if shape[0] == 0:
        raise DataError(f"{what} is empty: there are no samples to work on")
    if getattr(x, "dtype", None) is not None and x.dtype.kind not in "fiub":
        raise DataError(f"{what} has dtype {x.dtype}; expected numbers")
    device_x = backend.xp.ascontiguousarray(backend.asarray(x, dtype=model.dtype)).reshape(shape[0], -1)
    count = backend.xp.zeros(1, dtype=np.int64)
    backend.kernels.count_nonfinite(device_x, count)
    if (bad := int(count[0])) > 0:
        raise DataError(f"{what} contains {bad} NaN or infinite value{'' if bad == 1 else 's'}; clean or impute "
                        "them before training")
    return device_x


def targets(model: Model, y: Any, n: int, what: str = "y") -> Any:
    """Targets as a device array (n, outputs): integer class labels and class names become one-hot rows."""
    backend = model.backend
    y_host = np.asarray(backend.to_host(y))
    if y_host.shape[:1] != (n,):
        raise ConfigError(f"{what} has {y_host.shape[0] if y_host.ndim else 0} rows but x has {n} samples")
    if y_host.dtype.kind in "USO":
        y_host = label_indices(model, y_host, what)
    m = model.output_dim
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
    return backend.xp.ascontiguousarray(backend.asarray(y_host, dtype=model.dtype))


def label_indices(model: Model, labels: np.ndarray, what: str) -> np.ndarray:
    """Class-name labels as indices into ``model.class_names``; a model without class names takes the labels'
    sorted distinct names as its own (saved with it, and printed by ``xpnet predict``)."""
    values = labels.tolist() if labels.ndim == 1 else None
    if values is None or not all(isinstance(value, str) for value in values):
        raise DataError(f"{what} holds {labels.dtype} values that are neither numbers nor class names; give "
                        "integer labels 0..k-1, class names (strings) or one-hot rows")
    if model.is_regression:
        raise DataError(f"{what} holds class names, but this model predicts values (loss {model.loss.name} after "
                        "an identity output); give numeric targets, or a softmax/sigmoid classifier")
    names = model.class_names or sorted(set(values))
    if len(names) != model.class_count:
        raise DataError(f"{what} names {len(names)} classes, but the model has {model.class_count}; give the "
                        f"model class_names=[...] or an output layer of {len(names)} units")
    index = {name: i for i, name in enumerate(names)}
    unknown = next((value for value in values if value not in index), None)
    if unknown is not None:
        raise DataError(f"{what} has label {unknown!r}, which is not one of the model's classes {names}")
    model.class_names = list(names)
    return np.fromiter((index[value] for value in values), dtype=np.int64, count=len(values))


def device_data(model: Model, x: Any, y: Any, names: tuple[str, str] = ("x", "y")) -> tuple[Any, Any]:
    """Features and targets as checked device arrays (flat rows in the model's dtype, target rows); ``names``
    name them in errors."""
    x_dev = features(model, x, names[0])
    return x_dev, targets(model, y, x_dev.shape[0], names[1])
