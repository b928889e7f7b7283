"""What every family's Numba CPU kernels share: compile options, serial and parallel twins, contiguous outputs.

Kernels over large arrays exist twice, compiled serial and ``parallel=True`` from one Python function; a size
threshold picks one, because starting Numba's thread pool costs more than it saves on the small arrays of a
typical MLP step. Scalars are cast to the arrays' dtype so float32 work stays in float32.
"""

from __future__ import annotations

import os
import types
from functools import partial

import numba
import numpy as np
from numba import njit

PARALLEL_MIN_SIZE = 1 << 22
"""Arrays with at least this many elements use the parallel variant of a kernel.

Set high on purpose: a training step alternates these kernels with multithreaded BLAS matmuls, and Numba's
thread pool waking while BLAS's threads still spin made a 784-256-128-10 step ten times slower on 2 cores.
Only very large arrays (a wide MLP's Adam update) gain more from threads than they lose to that contention."""

if "NUMBA_THREADING_LAYER" not in os.environ:
    # OpenMP's workers spin after a parallel region and starve the BLAS threads of the matmul that follows
    # (a training step ran 8x slower); the workqueue layer's workers sleep.
    numba.config.THREADING_LAYER = "workqueue"

jit = partial(njit, cache=True, error_model="numpy")
"""Numba's default Python error model checks every division for zero, which stops the loops vectorising."""


def serial_and_parallel(py_func):
    """Compile ``py_func`` twice (serial, parallel) and return a wrapper that picks one by array size.

    Numba's on-disk cache is keyed by the function's qualified name and signature, not by ``parallel``, so the
    parallel twin is compiled from a renamed copy; otherwise both would load whichever was cached first.
    """
    serial = jit(py_func)
    twin = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + "_parallel")
    twin.__qualname__ = py_func.__qualname__ + "_parallel"
    parallel = jit(parallel=True)(twin)

    def by_size(*args):
        return (parallel if args[0].size >= PARALLEL_MIN_SIZE else serial)(*args)

    by_size.__name__ = py_func.__name__
    by_size.__qualname__ = py_func.__qualname__
    by_size.__doc__ = py_func.__doc__
    by_size.serial = serial
    by_size.parallel = parallel
    return by_size


def contiguous_output(a):
    """``a`` itself when C-contiguous, else a C-contiguous scratch array to be copied back by ``write_back``."""
    return a if a.flags.c_contiguous else np.empty(a.shape, a.dtype)


def write_back(a, result) -> None:
    """Copy ``result`` into ``a`` when ``contiguous_output`` gave scratch for it."""
    if result is not a:
        a[...] = result


def row_chunks(size: int) -> int:
    """Row chunks of a column reduction: one when serial, several per thread when parallel."""
    return 4 * numba.get_num_threads() if size >= PARALLEL_MIN_SIZE else 1
