"""Numba CPU row gather."""

from __future__ import annotations

from numba import prange

from ..numba_cpu import serial_and_parallel


def _gather_rows(out, src, idx):
    """out[i] = src[idx[i]], element by element: compiled serial, the slice assignment ``out[i, :] = src[idx[i], :]``
    took 88 us for a batch of 128 MNIST rows against 40 us for this loop and 60 us for ``numpy.take`` (one thread,
    2-core Intel Xeon VM, 2026-12-06)."""
    for i in prange(idx.shape[0]):
        row = src[idx[i]]
        target = out[i]
        for j in range(row.shape[0]):
            target[j] = row[j]


# Parallel from this size of the first argument: `python -m benchmarks.parallel_thresholds --threads 2 --only
# gather.gather_rows` (a new batch of rows from an MNIST-sized set at every call, as training draws them), twice on
# the 2-core Intel Xeon VM, 2026-12-06 11:07-11:09, nothing else running (load average 0.5-0.7): serial 1.3x faster at
# 31,622 elements, parallel 1.3x faster at 100,352 (a batch of 128 MNIST rows) in both. The serial twin's loop
# halved its time, which moved the switch up from 10,192.
GATHER_ROWS_PARALLEL_MIN = 100_352

_gather_rows_kernel = serial_and_parallel(_gather_rows, GATHER_ROWS_PARALLEL_MIN)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    _gather_rows_kernel(out, src, idx)
