"""Numba CPU row gather."""

from __future__ import annotations

from numba import prange

from ..numba_cpu import serial_and_parallel


def _gather_rows(out, src, idx):
    for i in prange(idx.shape[0]):
        out[i, :] = src[idx[i], :]


_gather_rows_kernel = serial_and_parallel(_gather_rows)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch)."""
    _gather_rows_kernel(out, src, idx)
