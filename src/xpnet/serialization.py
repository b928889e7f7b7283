"""Loading models: rebuilding the Model an xpnet archive (``xpnet.archive``) describes, on either device.

Every shape in the metadata is checked against the arrays before anything is allocated; files of every format
version so far load (version 1's Dense-only layer list is translated; before version 3 the optimizer's ``lr`` was
the rate of the last step, loaded as the base rate, with no schedule).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.archive import (
    FORMAT,
    FORMAT_VERSION,
    METADATA,
    archive_file,
    model_arrays,
    model_metadata,
    model_path,
    read_archive,
    save_model,
    write_archive,
)
from xpnet.backend import Backend, get_backend, resolve_dtype
from xpnet.errors import DeviceError, ModelFileError, XpnetError
from xpnet.layers import layer_from_config
from xpnet.model import Model, infer_shapes, model_input_shape
from xpnet.optimizers import get_optimizer

__all__ = ["FORMAT", "FORMAT_VERSION", "METADATA", "load_model", "model_arrays", "model_from_archive",
           "model_metadata", "model_path", "read_archive", "save_model", "write_archive"]

def _layer_configs(config: dict[str, Any], version: int) -> tuple[list[dict[str, Any]], Any]:
    """The layer configs and input shape of a saved model; format 1 (xpnet 0.1) held Dense layers only, as
    ``{"input_dim", "output_dim", ...}``, and no input shape of its own."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or not config["layers"]:
        raise TypeError("the model's layers are not a non-empty list")
    if not isinstance(config.get("optimizer"), dict):
        raise TypeError("the optimizer settings are not a dict")
    for layer in config["layers"]:
        if not isinstance(layer, dict):
            raise TypeError(f"layer {layer!r} is not a dict")
    if version >= 2:
        return config["layers"], config.get("input_shape")
    layers = [{"type": "dense", "units": layer["output_dim"], **{k: v for k, v in layer.items()
                                                                  if k not in ("input_dim", "output_dim")}}
              for layer in config["layers"]]
    return layers, [config["layers"][0]["input_dim"]]


def _check_array(path: Path, arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...], what: str) -> None:
    """ModelFileError unless ``arrays[name]`` has ``shape`` and finite floats (an empty one may be absent)."""
    array = arrays.get(name)
    if array is None and math.prod(shape) == 0:
        return
    if array is None or array.shape != shape:
        raise ModelFileError(
            f"{path}: the architecture needs {what} of shape {shape}, but the file holds "
            f"{'none' if array is None else array.shape}; the file is corrupt or its config was edited"
        )
    if array.dtype.kind != "f" or not np.isfinite(array).all():
        raise ModelFileError(f"{path}: the {what} are not finite floating-point numbers; the file is corrupt")


def model_from_archive(
    path: Path,
    metadata: dict[str, Any],
    arrays: dict[str, np.ndarray],
    *,
    device: str | None = None,
    dtype: Any = None,
    kernel_mode: str | None = None,
    backend: Backend | None = None,
) -> Model:
    """Rebuild the Model an archive describes, on ``backend`` (or one built for ``device``, in the saved dtype by
    default). Every shape is checked against the arrays before anything is allocated."""
    try:
        config = metadata["model"]
        layer_configs, input_shape = _layer_configs(config, metadata["format_version"])
        layers = [layer_from_config(dict(c), f"layer {i}") for i, c in enumerate(layer_configs)]
        infer_shapes(layers, model_input_shape(layers, input_shape))
        optimizer = get_optimizer(dict(config["optimizer"]))
        loss, saved_dtype, step = config["loss"], resolve_dtype(config["dtype"]), int(config.get("step", 0))
        params = sum(layer.parameter_count for layer in layers)
        _check_array(path, arrays, "params", (params,), "parameters")
        _check_array(path, arrays, "state", (sum(layer.state_count for layer in layers),), "state values")
        if "moments" in arrays:
            _check_array(path, arrays, "moments", (optimizer.slots, params), "optimizer moments")
    except (ModelFileError, DeviceError):
        raise
    except XpnetError as exc:
        raise ModelFileError(f"{path}: the saved architecture is invalid: {exc}") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(
            f"{path}: the metadata is incomplete or malformed ({exc!r}); the file is corrupt"
        ) from None
    backend = backend or get_backend(device, dtype or saved_dtype, None, kernel_mode)
    try:
        model = Model(
            layers, loss, optimizer, input_shape=input_shape, backend=backend,
            class_names=config.get("class_names"), preprocessing=config.get("preprocessing"),
            metrics=config.get("metrics"),
        )
        model.step = step
    except DeviceError:  # the device cannot hold the model: not a problem of the file
        raise
    except XpnetError as exc:
        raise ModelFileError(f"{path}: the saved model is invalid: {exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{path}: the metadata is malformed ({exc!r}); the file is corrupt") from None
    model.set_parameters(arrays["params"])
    if "state" in arrays:
        model.set_state(arrays["state"])
    if "moments" in arrays:
        model.moments[...] = model.backend.asarray(arrays["moments"], dtype=model.dtype)
    return model


def load_model(
    path: str | Path,
    *,
    device: str | None = None,
    dtype: Any = None,
    kernel_mode: str | None = None,
    backend: Backend | None = None,
) -> Model:
    """Load a model saved by ``save_model`` or ``xpnet train --save``, a checkpoint file, or the newest checkpoint
    of a ``--checkpoint-dir`` folder, onto ``backend``, or one built for ``device``: either device reads either's
    files. A CLI-trained model keeps its class names and preprocessing (``model.predict`` returns the names)."""
    path = archive_file(path)
    metadata, arrays = read_archive(path)
    return model_from_archive(path, metadata, arrays, device=device, dtype=dtype, kernel_mode=kernel_mode,
                              backend=backend)
