"""Data read a chunk at a time: the ``ChunkedData`` the trainer consumes, built from a function that reads one
chunk, so a CSV file or an image folder larger than memory trains with a bounded number of samples loaded; and
the ``Spill`` that keeps such chunks on disk, parsed or decoded once."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xpnet.trainer import ChunkedData

DEFAULT_MEMORY = 2**30
"""Bytes of float32 features held at once when the command line is not told how many samples: 1 GiB."""

MAX_CHUNK = 65536
"""Most samples read (decoded, parsed) at once, even when more fit in memory."""


def samples_in_memory(max_in_memory: int | None, features: int) -> int:
    """How many samples may be held at once: ``max_in_memory``, or as many as fit ``DEFAULT_MEMORY`` as float32."""
    return max_in_memory if max_in_memory is not None else max(1, DEFAULT_MEMORY // (4 * max(1, features)))


def chunk_bounds(total: int, rows: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive chunks of ``rows`` over ``total`` samples."""
    return [(lo, min(total, lo + rows)) for lo in range(0, total, rows)]


class ChunkReader(ChunkedData):
    """Chunks of ``lengths`` samples of ``features`` values each, read by ``read(index)`` when needed, and rows of
    one by ``read_rows(index, rows)`` when given (else from the whole chunk)."""

    def __init__(self, lengths: Sequence[int], features: int,
                 read: Callable[[int], tuple[np.ndarray, np.ndarray]],
                 read_rows: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self._lengths, self._features, self._read = [int(n) for n in lengths], int(features), read
        self._read_rows = read_rows

    @property
    def chunk_lengths(self) -> Sequence[int]:
        return self._lengths

    @property
    def features(self) -> int:
        return self._features

    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self._read(index)

    def chunk_rows(self, index: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return super().chunk_rows(index, rows) if self._read_rows is None else self._read_rows(index, rows)


class Spill:
    """Chunks of raw samples (parsed rows, decoded images) written once to ``.npy`` files in a temporary folder
    (removed with this object or at exit) and read back memory-mapped: a streamed epoch reads binary arrays instead
    of parsing or decoding its data again."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="xpnet-chunks-")
        self.lengths: list[int] = []

    def _path(self, index: int) -> Path:
        return Path(self._folder.name) / f"{index:08d}.npy"

    def append(self, samples: np.ndarray) -> None:
        """Write the next chunk."""
        np.save(self._path(len(self.lengths)), samples, allow_pickle=False)
        self.lengths.append(len(samples))

    def read(self, index: int) -> np.ndarray:
        """Chunk ``index``, memory-mapped."""
        return np.load(self._path(index), mmap_mode="r", allow_pickle=False)

    def select(self, labels: np.ndarray, mask: np.ndarray, transform: Callable[[np.ndarray], np.ndarray] | None,
               features: int) -> ChunkReader:
        """The samples ``mask`` selects (of all the spilled ones, in order), with their ``labels``, each passed through
        ``transform`` (None: raw; it must work row by row) as it is read. They come in chunks of as many samples as
        the spill's chunks hold, the last one shorter (so a chunk size a multiple of the rank count shares every
        chunk equally between ranks), and a rank's rows of a chunk are read alone from the memory maps."""
        chosen = np.flatnonzero(mask)
        starts = np.cumsum([0, *self.lengths])  # each spilled chunk's first sample
        bounds = chunk_bounds(len(chosen), max(self.lengths, default=1))

        def read_rows(index: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            picked = chosen[bounds[index][0] + rows]
            spilled = np.searchsorted(starts, picked, side="right") - 1
            parts = [self.read(k)[picked[spilled == k] - starts[k]] for k in np.unique(spilled)]
            x = parts[0] if len(parts) == 1 else np.concatenate(parts)
            return (x if transform is None else transform(x)), labels[picked]

        def read(index: int) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = bounds[index]
            return read_rows(index, np.arange(hi - lo))

        return ChunkReader([hi - lo for lo, hi in bounds], features, read, read_rows)
