"""Download the four MNIST files from public mirrors, verified and written atomically."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from xpnet.errors import DataError
from xpnet.fileio import atomic_write

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
"""The canonical MNIST file names, as the mirrors serve them."""

MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
"""MD5 of each file's decompressed content (the published values for the uncompressed IDX files).

The gzip wrapper is not checked: re-compressed copies hold the same data under different ``.gz`` checksums.
"""

MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
"""Mirrors tried in order; ``base_url`` or the ``XPNET_MNIST_URL`` environment variable replaces them."""

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def content_md5(stream: BinaryIO) -> str:
    """MD5 (hex) of a binary stream's content, decompressed first when it starts with the gzip magic bytes.

    Raises ``EOFError``, ``zlib.error`` or ``gzip.BadGzipFile`` for a truncated or corrupt gzip stream.
    """
    compressed = stream.read(2) == GZIP_MAGIC
    stream.seek(0)
    reader = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := reader.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: str | os.PathLike, expected_md5: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through a temporary file beside it, renamed into place only once complete.

    ``expected_md5`` is checked against the decompressed content (see ``content_md5``). Any failure raises
    (``OSError``, ``http.client.HTTPException`` or ``DataError``) and leaves neither ``dest`` nor a temporary
    file.
    """
    target = Path(dest)
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, atomic_write(target, "w+b") as handle:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise DataError(f"download of {url} stopped after {received} of {total} bytes")
        if expected_md5 is not None:
            handle.seek(0)
            try:
                actual = content_md5(handle)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise DataError(f"{url} is not a valid gzip file ({exc})") from None
            if actual != expected_md5:
                raise DataError(f"{url}: checksum mismatch (content MD5 {actual}, expected {expected_md5})")
    return target


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failed download."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"cannot connect ({exc.reason})"
    return str(exc) or type(exc).__name__


def _created_folders(target: Path) -> list[Path]:
    """Create ``target`` with its missing parents; return the folders created, deepest first."""
    missing = [folder for folder in (target, *target.parents) if not folder.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the MNIST folder {target}: {exc.strerror or exc}") from None
    return missing


def download_mnist(target_dir: str | os.PathLike, base_url: str | None = None, progress: bool = True) -> Path:
    """Download whichever of the four MNIST files are missing from ``target_dir``; return ``target_dir``.

    Mirrors: ``base_url`` if given, else ``$XPNET_MNIST_URL`` if set, else ``MNIST_MIRRORS`` in order (each
    file fails over to the next mirror). Each file is checked against ``MNIST_MD5`` before it is put in place.
    A failure leaves the files already verified, and removes the folders it created that are still empty.
    """
    target = Path(target_dir).expanduser()
    base = base_url or os.environ.get("XPNET_MNIST_URL")
    mirrors = [base] if base else list(MNIST_MIRRORS)
    created = _created_folders(target)
    try:
        for name in MNIST_FILES:
            stem = name.removesuffix(".gz")
            if not ((target / name).is_file() or (target / stem).is_file()):
                _download_one(name, target, mirrors, progress)
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):  # not empty (files kept for next time) or already gone
                folder.rmdir()
        raise
    return target


def _download_one(name: str, target: Path, mirrors: list[str], progress: bool) -> None:
    """Fetch one MNIST file into ``target`` from the first mirror that serves it intact, or one-line DataError."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            fetch(url, target / name, MNIST_MD5[name.removesuffix(".gz")], progress=progress)
            return
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {_describe(exc)}")
    raise DataError(
        f"could not download {name}; every mirror failed ({'; '.join(failures)})",
        hint=f"download the four MNIST files by hand from any mirror into {target} (gzip-compressed or not), "
             "or set XPNET_MNIST_URL to a mirror that works",
    )
