"""Data read a chunk at a time: the ``ChunkedData`` the trainer consumes, built from a function that reads one
chunk, so a CSV file or an image folder larger than memory trains with a bounded number of samples loaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    """Chunks of ``lengths`` samples of ``features`` values each, read by ``read(index)`` when needed."""

    def __init__(self, lengths: Sequence[int], features: int,
                 read: Callable[[int], tuple[np.ndarray, np.ndarray]]) -> None:
        self._lengths, self._features, self._read = [int(n) for n in lengths], int(features), read

    @property
    def chunk_lengths(self) -> Sequence[int]:
        return self._lengths

    @property
    def features(self) -> int:
        return self._features

    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self._read(index)
