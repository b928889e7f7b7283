"""Saving and loading models without pickle: one ``.npz`` of plain arrays plus a JSON metadata member.

The archive holds ``params`` (the flat parameter vector), ``state`` (non-trainable values such as BatchNorm's
running statistics, when the model has any), ``moments`` (the optimizer's state, optional) and
``__metadata__`` (UTF-8 JSON as uint8: architecture, loss, optimizer, dtype, class names, preprocessing, xpnet
version, and for checkpoints the training position). It is written atomically and read by a parser that checks
every member's header against its real size before allocating, and refuses object arrays: a file from anywhere
can only ever be loaded or refused with a ``ModelFileError``.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from xpnet import __version__
from xpnet.backend import Backend, get_backend, resolve_dtype
from xpnet.errors import DeviceError, ModelFileError, XpnetError
from xpnet.fileio import atomic_write
from xpnet.layers import layer_from_config
from xpnet.model import Model, infer_shapes, model_input_shape
from xpnet.optimizers import get_optimizer

FORMAT = "xpnet-model"
FORMAT_VERSION = 2
"""2: layers by type with an input shape, and a state array (xpnet 0.2); 1: Dense layers only (0.1)."""
METADATA = "__metadata__"


def _npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def write_archive(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Write ``arrays`` and ``metadata`` to ``path`` as an npz archive, atomically."""
    members = {name: _npy_bytes(np.asarray(a)) for name, a in arrays.items()}
    members[METADATA] = _npy_bytes(np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8))
    with atomic_write(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    name = info.filename
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        except (ValueError, EOFError) as exc:
            raise ModelFileError(f"{path}: member {name} is not a valid .npy array ({exc})") from None
        if dtype.hasobject:
            raise ModelFileError(f"{path}: member {name} holds Python objects; xpnet files never contain pickles")
        header_size = member.tell()
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size - header_size != expected:
            raise ModelFileError(
                f"{path}: member {name} claims shape {shape} ({expected} bytes) but holds "
                f"{info.file_size - header_size} bytes; the file is truncated or corrupt"
            )
        data = member.read(expected)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_archive(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and arrays of an xpnet archive, or ModelFileError saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check the path (models are saved with --save)")
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise ModelFileError(f"{path}: unexpected member {info.filename!r}; not an xpnet model file")
                arrays[info.filename[:-4]] = _read_member(archive, info, path)
    except XpnetError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError) as exc:  # RuntimeError: a member flagged as encrypted
        raise ModelFileError(
            f"{path}: not a readable xpnet model file ({exc.__class__.__name__}: {exc}); it may be truncated, "
            f"or not a model at all. Save it again with xpnet"
        ) from None
    raw = arrays.pop(METADATA, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{path}: no xpnet metadata in this .npz; it was not written by xpnet")
    try:
        metadata = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: the metadata is not valid JSON ({exc}); the file is corrupt") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an xpnet model file (format marker missing)")
    if not isinstance(metadata.get("format_version"), int) or metadata["format_version"] > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in format version {metadata.get('format_version')!r}, newer than this xpnet "
            f"{__version__} understands ({FORMAT_VERSION}); upgrade xpnet"
        )
    return metadata, arrays


def model_metadata(model: Model, kind: str = "model", **extra: Any) -> dict[str, Any]:
    """The JSON metadata that describes ``model`` (plus ``extra`` entries, e.g. a checkpoint's training state)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "xpnet_version": __version__,
        "model": model.config(),
        **extra,
    }


def model_arrays(model: Model, include_optimizer: bool = True) -> dict[str, np.ndarray]:
    """The arrays to save: parameters, non-trainable state, and the optimizer's moments when asked."""
    arrays = {"params": model.get_parameters()}
    if model.state_count:
        arrays["state"] = model.get_state()
    if include_optimizer and model.optimizer.slots:
        arrays["moments"] = model.backend.to_host(model.moments).copy()
    return arrays


def model_path(path: str | Path) -> Path:
    """The file ``save_model`` writes for ``path``: ``.npz`` is added when missing."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def save_model(model: Model, path: str | Path, include_optimizer: bool = True) -> Path:
    """Save ``model`` to ``path`` (``.npz`` is added when missing), atomically; return the path written."""
    path = model_path(path)
    write_archive(path, model_arrays(model, include_optimizer), model_metadata(model))
    return path


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
    """Load a model saved by ``save_model`` (or a checkpoint) onto ``backend``, or one built for ``device``:
    either device reads either's files."""
    metadata, arrays = read_archive(path)
    return model_from_archive(Path(path), metadata, arrays, device=device, dtype=dtype, kernel_mode=kernel_mode,
                              backend=backend)
