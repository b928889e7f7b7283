"""The xpnet file format: one ``.npz`` of plain arrays plus a JSON metadata member, written and read without pickle.

The archive holds ``params`` (the flat parameter vector), ``state`` (non-trainable values such as BatchNorm's
running statistics, when the model has any), ``moments`` (the optimizer's state, optional) and
``__metadata__`` (UTF-8 JSON as uint8: architecture, loss, optimizer with its learning-rate schedule, dtype, class
names, preprocessing, xpnet version, and for checkpoints the training position). It is written atomically and read
by a parser that checks every member's header against its real size before allocating, and refuses object arrays:
a file from anywhere can only ever be loaded or refused with a ``ModelFileError``. Writing needs only a model's
arrays and config, so ``Model.save`` uses this module; rebuilding a model from an archive is ``xpnet.serialization``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.errors import ModelFileError, XpnetError
from xpnet.fileio import atomic_write
from xpnet.version import __version__

if TYPE_CHECKING:
    from xpnet.model import Model

FORMAT = "xpnet-model"
FORMAT_VERSION = 3
"""3: the optimizer config holds its base rate and learning-rate schedule (before, ``lr`` was the rate of the last
step); 2: layers by type with an input shape, and a state array (xpnet 0.2); 1: Dense layers only (0.1)."""
METADATA = "__metadata__"
CHECKPOINT_NAME = re.compile(r"^checkpoint-e(\d{5})-b(\d{7})\.npz$")
"""A checkpoint's file name: the epochs and batches done when it was written."""


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


def checkpoint_files(directory: str | Path) -> list[Path]:
    """The checkpoint files in ``directory``, newest (furthest into training) first."""
    found = []
    for path in Path(directory).glob("checkpoint-*.npz"):
        match = CHECKPOINT_NAME.match(path.name)
        if match:
            found.append((int(match[1]), int(match[2]), path))
    return [path for *_, path in sorted(found, reverse=True)]


def archive_file(path: str | Path) -> Path:
    """The file to read for ``path``: the path itself, or for a folder of checkpoints its newest checkpoint
    (ModelFileError for a folder without one)."""
    path = Path(path)
    if not path.is_dir():
        return path
    newest = checkpoint_files(path)
    if not newest:
        raise ModelFileError(f"{path}: a folder without checkpoints (checkpoint-eNNNNN-bNNNNNNN.npz); give a model "
                             "file or a --checkpoint-dir folder")
    return newest[0]


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
