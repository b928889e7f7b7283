"""MNIST: read the four IDX files (gzip-compressed or not), verify them, and convert to and from CSV.

Every problem with a file raises ``DataError`` naming the file and saying what to do; nothing large is
allocated before the file is known to be able to hold what its header announces.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from xpnet.data.download import GZIP_MAGIC, MNIST_FILES, MNIST_MD5, MNIST_MIRRORS, download_mnist
from xpnet.errors import DataError
from xpnet.fileio import atomic_write

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
PIXELS = 28 * 28
_CSV_COLUMNS = 1 + PIXELS
_MAX_GZIP_RATIO = 1032  # deflate cannot expand a stream by more than this: bounds what a .gz file can hold
_CHUNK = 1 << 20
_CSV_ROWS_PER_CHUNK = 4096
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_REDOWNLOAD = "Delete it and download it again (`xpnet train mnist` downloads missing files)."

# Decimal text of 0..255 and a comma (or, ending a row, a newline), zero-padded to 4 bytes read as one uint32.
_FIELDS = np.frombuffer(b"".join(f"{v},".encode().ljust(4, b"\0") for v in range(256)), dtype=np.uint32)
_LAST_FIELDS = np.frombuffer(b"".join(f"{v}\n".encode().ljust(4, b"\0") for v in range(256)), dtype=np.uint32)


@dataclass
class MnistData:
    """The MNIST splits: images as uint8 rows of 784 pixels, labels as int64 digits 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def default_data_dir() -> Path:
    """``$XPNET_DATA`` if set, else the per-user cache: ``$XDG_CACHE_HOME/xpnet`` or ``~/.cache/xpnet``."""
    override = os.environ.get("XPNET_DATA")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "xpnet"


def _read_idx(path: Path, magic: int, verify: bool = False) -> tuple[tuple[int, ...], bytearray]:
    """Read an IDX file of unsigned bytes; return its dimensions and data (optionally MD5-checked by name)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the ``with`` below
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    with raw:
        size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        try:
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    header, dims, body = _parse_idx(stream, path, magic, size, True)
            else:
                header, dims, body = _parse_idx(raw, path, magic, size, False)
        except EOFError:
            raise DataError(f"{path} is a truncated gzip file (its data ends early). {_REDOWNLOAD}") from None
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise DataError(f"{path} is a corrupt gzip file ({exc}). {_REDOWNLOAD}") from None
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    expected = MNIST_MD5.get(path.name.removesuffix(".gz")) if verify else None
    if expected is not None:
        digest = hashlib.md5(header, usedforsecurity=False)
        digest.update(body)
        if digest.hexdigest() != expected:
            raise DataError(
                f"{path} does not hold the canonical MNIST data: the MD5 of its (decompressed) content is "
                f"{digest.hexdigest()}, expected {expected}. {_REDOWNLOAD}"
            )
    return dims, body


def _parse_idx(
    stream: BinaryIO, path: Path, magic: int, size: int, compressed: bool
) -> tuple[bytes, tuple[int, ...], bytearray]:
    """Parse header and data from ``stream`` (a file of ``size`` bytes); refuse headers it cannot satisfy."""
    ndim = magic & 0xFF
    what = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}[magic]
    header = stream.read(4 + 4 * ndim)
    found = int.from_bytes(header[:4], "big") if len(header) >= 4 else None
    if found != magic:
        hint = {IMAGES_MAGIC: " (an images file)", LABELS_MAGIC: " (a labels file)"}.get(found or 0, "")
        described = "it is shorter than 4 bytes" if found is None else f"its magic number is {found}{hint}"
        raise DataError(f"{path} is not an IDX {what} file: {described}, expected {magic}. {_REDOWNLOAD}")
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header. {_REDOWNLOAD}")
    dims = struct.unpack(f">{ndim}I", header[4:])
    if what == "images" and 0 in dims[1:]:
        raise DataError(f"{path} is not an MNIST file: its header announces empty {dims[1]}x{dims[2]} images")
    needed = math.prod(dims)
    available = (size * _MAX_GZIP_RATIO if compressed else size) - len(header)
    if needed > available:
        shape = "x".join(str(d) for d in dims[1:])
        announced = f"{dims[0]} {what}" + (f" of {shape} pixels" if shape else "")
        limit = f"a {size}-byte gzip file cannot hold that much" if compressed else f"it holds {available}"
        raise DataError(
            f"{path} is truncated or not an MNIST file: its header announces {announced} ({needed} bytes), "
            f"but {limit}. {_REDOWNLOAD}"
        )
    body = bytearray()
    while len(body) < needed:
        chunk = stream.read(min(_CHUNK, needed - len(body)))
        if not chunk:
            raise DataError(
                f"{path} is truncated: its header announces {needed} bytes of {what} but it holds only "
                f"{len(body)}. {_REDOWNLOAD}"
            )
        body += chunk
    if stream.read(1):  # for gzip, this read also reaches the end of the stream and checks its CRC
        raise DataError(f"{path} has data after the {dims[0]} {what} its header announces. {_REDOWNLOAD}")
    return header, dims, body


def _images(dims: tuple[int, ...], body: bytearray) -> np.ndarray:
    return np.frombuffer(body, dtype=np.uint8).reshape(dims[0], dims[1] * dims[2])


def _labels(dims: tuple[int, ...], body: bytearray, path: Path) -> np.ndarray:
    labels = np.frombuffer(body, dtype=np.uint8)
    if labels.size and labels.max() > 9:
        index = int(np.argmax(labels > 9))
        raise DataError(f"{path}: label {labels[index]} at position {index} is outside 0..9. {_REDOWNLOAD}")
    return labels.astype(np.int64)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX images file (magic 2051, gzip-compressed or not) as uint8 of shape (n, rows * cols)."""
    return _images(*_read_idx(Path(path), IMAGES_MAGIC))


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX labels file (magic 2049, gzip-compressed or not) as int64 of shape (n,), values 0..9."""
    path = Path(path)
    return _labels(*_read_idx(path, LABELS_MAGIC), path)


def _mnist_paths(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` by stem (uncompressed preferred to ``.gz``); None if any is missing."""
    found = {}
    for name in MNIST_FILES:
        stem = name.removesuffix(".gz")
        candidates = [p for p in (folder / stem, folder / name) if p.is_file()]
        if not candidates:
            return None
        found[stem] = candidates[0]
    return found


def find_mnist(data_dir: str | os.PathLike) -> Path | None:
    """The folder holding the four MNIST files: ``data_dir/mnist``, else ``data_dir``; None if neither."""
    root = Path(data_dir).expanduser()
    for folder in (root / "mnist", root):
        if _mnist_paths(folder) is not None:
            return folder
    return None


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    base_url: str | None = None,
    verify: bool = True,
) -> MnistData:
    """Load MNIST from ``data_dir`` (default ``default_data_dir()``).

    If the files are missing and ``download`` is set, they are downloaded into ``data_dir/mnist`` (from
    ``base_url`` if given). With ``verify``, each file's decompressed content must match its published MD5.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = find_mnist(root)
    if folder is None:
        if not download:
            raise DataError(
                f"MNIST not found: looked in {root / 'mnist'} and {root} for {', '.join(MNIST_FILES)} "
                f"(gzip-compressed or not). `xpnet train mnist` downloads them by default into the cache "
                f"({default_data_dir()}); or pass --data-dir with the folder that holds them, or download "
                f"them by hand (for example from {MNIST_MIRRORS[0]}) into {root / 'mnist'}."
            )
        folder = download_mnist(root / "mnist", base_url=base_url)
    paths = _mnist_paths(folder)
    assert paths is not None  # find_mnist or download_mnist guarantees the four files
    splits = []
    for prefix in ("train", "t10k"):
        images_path, labels_path = paths[f"{prefix}-images-idx3-ubyte"], paths[f"{prefix}-labels-idx1-ubyte"]
        dims, body = _read_idx(images_path, IMAGES_MAGIC, verify)
        if dims[1:] != (28, 28):
            raise DataError(f"{images_path} holds {dims[1]}x{dims[2]} images; MNIST images are 28x28.")
        images = _images(dims, body)
        labels = _labels(*_read_idx(labels_path, LABELS_MAGIC, verify), labels_path)
        if len(images) != len(labels):
            raise DataError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                f"the files do not belong together. Delete them and download them again."
            )
        splits += [images, labels]
    return MnistData(*splits)


def _csv_problem(path: Path, lines: list[str], start: int, fallback: str) -> DataError:
    """Find the first bad line of an MNIST CSV file (1-based line numbers) and describe it."""
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != _CSV_COLUMNS:
            return DataError(
                f"{path}, line {number}: {len(fields)} values, expected {_CSV_COLUMNS} "
                f"(a label, then {PIXELS} pixels)"
            )
        for column, field in enumerate(fields, start=1):
            if not _INTEGER.fullmatch(field):
                return DataError(f"{path}, line {number}, column {column}: {field.strip()!r} is not a number")
        values = [int(f) for f in fields]
        if not 0 <= values[0] <= 9:
            return DataError(f"{path}, line {number}: label {values[0]} is outside 0..9")
        for column, value in enumerate(values[1:], start=2):
            if not 0 <= value <= 255:
                return DataError(f"{path}, line {number}, column {column}: pixel {value} is outside 0..255")
    return DataError(f"{path} is not an MNIST CSV file: {fallback}")


def read_mnist_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read rows ``label,p0,...,p783`` (optional header line): uint8 (n, 784) images and int64 labels."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a text CSV file: byte {exc.start} is not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    # A header names the columns: its first field (the label's) is not a number.
    start = first + 1 if first < len(lines) and not _INTEGER.fullmatch(lines[first].split(",")[0]) else first
    rows = [line for line in lines[start:] if line.strip()]
    if not rows:
        raise DataError(f"{path} holds no data rows (expected lines of a label then 784 pixel values)")
    try:
        table = np.loadtxt(rows, delimiter=",", dtype=np.int64, ndmin=2, comments=None)
    except (ValueError, OverflowError) as exc:
        raise _csv_problem(path, lines, start, str(exc)) from None
    if (
        table.shape[1] != _CSV_COLUMNS
        or table[:, 0].min() < 0
        or table[:, 0].max() > 9
        or table[:, 1:].min() < 0
        or table[:, 1:].max() > 255
    ):
        raise _csv_problem(path, lines, start, "values out of range")
    return table[:, 1:].astype(np.uint8), table[:, 0].copy()


def _csv_text(rows: np.ndarray) -> bytes:
    """Comma-separated decimal text of a 2-D uint8 array, one line a row (vectorised: no per-value Python)."""
    fields = _FIELDS[rows]
    fields[:, -1] = _LAST_FIELDS[rows[:, -1]]
    text = fields.view(np.uint8).ravel()
    return text[text != 0].tobytes()


def write_mnist_csv(path: str | os.PathLike, x: np.ndarray, y: np.ndarray) -> Path:
    """Write images ``x`` (n, 784) and labels ``y`` (n,) as ``label,p0,...,p783`` rows, atomically."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != PIXELS or y.shape != (len(x),):
        raise DataError(
            f"cannot write MNIST CSV: need images (n, 784) and labels (n,), got {x.shape} and {y.shape}"
        )
    for name, array, top in (("images", x, 255), ("labels", y, 9)):
        if array.size and (
            not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > top
        ):
            raise DataError(f"cannot write MNIST CSV: {name} must be whole numbers in 0..{top}")
    target = Path(path)
    with atomic_write(target, "wb") as handle:
        for begin in range(0, len(x), _CSV_ROWS_PER_CHUNK):
            end = begin + _CSV_ROWS_PER_CHUNK
            rows = np.concatenate([y[begin:end, None], x[begin:end]], axis=1).astype(np.uint8)
            handle.write(_csv_text(rows))
    return target


def make_mnist_csv(data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Convert the MNIST IDX files in ``data_dir`` to ``out_dir/mnist_train.csv`` and ``mnist_test.csv``."""
    data = load_mnist(data_dir)
    out = Path(out_dir).expanduser()
    return (
        write_mnist_csv(out / "mnist_train.csv", data.x_train, data.y_train),
        write_mnist_csv(out / "mnist_test.csv", data.x_test, data.y_test),
    )
