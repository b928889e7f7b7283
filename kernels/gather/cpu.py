"""Numba CPU row gather."""

from __future__ import annotations

from numba import prange

from ..numba_cpu import serial_and_parallel


def _gather_rows(out, src, idx):
    for i in prange(idx.shape[0]):
        out[i, :] = src[idx[i], :]


# Parallel from these sizes of the first argument: measured by `python -m benchmarks.parallel_thresholds
# --threads 2` on Numba's TBB pool, 2-core AMD EPYC VM, 2026-12-05, nothing else running (load average 1.3).
GATHER_ROWS_PARALLEL_MIN = 10_192

_gather_rows_kernel = serial_and_parallel(_gather_rows, GATHER_ROWS_PARALLEL_MIN)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    _gather_rows_kernel(out, src, idx)
