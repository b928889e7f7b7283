"""Numba CPU row gather."""

from __future__ import annotations

from numba import prange

from ..numba_cpu import serial_and_parallel


def _gather_rows(out, src, idx):
    for i in prange(idx.shape[0]):
        out[i, :] = src[idx[i], :]


# Parallel from these sizes of the first argument (1 << 24: not faster up to 1e7,
# the largest size measured): measured by
# `python -m benchmarks.parallel_thresholds` at 2 threads, 2-core AMD EPYC VM, 2026-12-05, load average 5-7
# (shared with other jobs: two runs, the larger crossover of the two kept).
GATHER_ROWS_PARALLEL_MIN = 9_999_920

_gather_rows_kernel = serial_and_parallel(_gather_rows, GATHER_ROWS_PARALLEL_MIN)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    _gather_rows_kernel(out, src, idx)
