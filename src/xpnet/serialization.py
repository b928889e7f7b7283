"""Saving and loading models without pickle: one ``.npz`` of plain arrays plus a JSON metadata member.

The archive holds ``params`` (the flat parameter vector), ``moments`` (the optimizer's state, optional) and
``__metadata__`` (UTF-8 JSON as uint8: architecture, loss, optimizer, dtype, class names, preprocessing, xpnet
version, and for checkpoints the training position). It is written atomically and read by a parser that checks
every member's header against its real size before allocating, and refuses object arrays: a file from anywhere
can only ever be loaded or refused with a ``ModelFileError``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from xpnet import __version__
from xpnet.backend import Backend, get_backend
from xpnet.errors import ModelFileError, XpnetError
from xpnet.fileio import atomic_write
from xpnet.layers import Dense
from xpnet.model import Model

FORMAT = "xpnet-model"
FORMAT_VERSION = 1
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
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
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
    """The arrays to save: parameters, and the optimizer's moments when asked."""
    arrays = {"params": model.get_parameters()}
    if include_optimizer and model.optimizer.slots:
        arrays["moments"] = model.backend.to_host(model.moments).copy()
    return arrays


def save_model(model: Model, path: str | Path, include_optimizer: bool = True) -> Path:
    """Save ``model`` to ``path`` (``.npz`` is added when missing), atomically; return the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    write_archive(path, model_arrays(model, include_optimizer), model_metadata(model))
    return path


def _check_config(config: Any) -> None:
    """TypeError unless the layers are a list of dicts and the optimizer settings a dict (their values are
    checked by ``Dense`` and the optimizer classes themselves)."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise TypeError("the model's layers are not a list")
    if not isinstance(config.get("optimizer"), dict):
        raise TypeError("the optimizer settings are not a dict")
    for layer in config["layers"]:
        if not isinstance(layer, dict):
            raise TypeError(f"layer {layer!r} is not a dict")


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
    """Rebuild the Model an archive describes, on ``device`` (default: auto) and in its saved dtype by default."""
    try:
        config = metadata["model"]
        _check_config(config)
        layers = [Dense(**layer) for layer in config["layers"]]
        expected = sum(layer.parameter_count for layer in layers)
        params = arrays.get("params")
        if params is None or params.shape != (expected,):  # before Model allocates what the layers claim
            raise ModelFileError(
                f"{path}: expected {expected} parameters for this architecture, found "
                f"{'none' if params is None else params.shape}; the file is corrupt"
            )
        backend = backend or get_backend(device, dtype or config["dtype"], None, kernel_mode)
        model = Model(
            layers, config["loss"], dict(config["optimizer"]), backend=backend,
            class_names=config.get("class_names"), preprocessing=config.get("preprocessing"),
        )
        model.step = int(config.get("step", 0))
    except ModelFileError:
        raise
    except XpnetError as exc:
        raise ModelFileError(f"{path}: the saved architecture is invalid: {exc}") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(
            f"{path}: the metadata is incomplete or malformed ({exc!r}); the file is corrupt"
        ) from None
    if params.dtype.kind != "f" or not np.isfinite(params).all():
        raise ModelFileError(f"{path}: the parameters are not finite floating-point numbers; the file is corrupt")
    model.set_parameters(params)
    moments = arrays.get("moments")
    if moments is not None:
        if moments.shape != tuple(model.moments.shape) or moments.dtype.kind != "f":
            raise ModelFileError(
                f"{path}: the optimizer state has shape {moments.shape}, expected {model.moments.shape}"
            )
        model.moments[...] = model.backend.asarray(moments, dtype=model.dtype)
    return model


def load_model(
    path: str | Path, *, device: str | None = None, dtype: Any = None, kernel_mode: str | None = None
) -> Model:
    """Load a model saved by ``save_model`` (or a checkpoint) onto ``device``: either device reads either's files."""
    metadata, arrays = read_archive(path)
    return model_from_archive(Path(path), metadata, arrays, device=device, dtype=dtype, kernel_mode=kernel_mode)
