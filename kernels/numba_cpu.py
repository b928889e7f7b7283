"""What every family's Numba CPU kernels share: compile options, serial and parallel twins, contiguous outputs.

Kernels over large arrays exist twice, compiled serial and ``parallel=True`` from one Python function; a size
threshold of the kernel's own (measured by ``python -m benchmarks.parallel_thresholds`` and kept beside the kernel)
picks one, because waking Numba's thread pool costs more than it saves on small arrays, and the crossover differs
from kernel to kernel. With one thread in use the serial twin always runs. The calibration times each kernel alone;
in a training step the kernels alternate with multithreaded BLAS matmuls, which is why the pool is TBB's (its
workers yield; ``THREADING_LAYERS``) and why ``xpnet.threads`` shortens OpenBLAS's idle spin: with either pool
spinning, the other's threads wait for a core. Scalars are cast to the arrays' dtype so float32 work stays in
float32.

Reductions (column sums, batch-norm statistics, loss sums) sum fixed blocks of ``BLOCK_ROWS`` rows into their own
partial sums and add those up in order, whichever twin runs and however many threads it has: the result never
depends on the thread count.
"""

from __future__ import annotations

import os
import threading
import types
from collections.abc import Callable
from functools import partial

import numba
import numba.np.ufunc.parallel as numba_parallel
import numpy as np
from numba import njit

THREADING_LAYERS = ["tbb", "workqueue", "omp"]
"""Numba's thread pools in order of preference (``$NUMBA_THREADING_LAYER`` overrides; Numba wants all three named,
and the workqueue is always there). In a training step parallel kernels alternate with BLAS matmuls on the same
cores, which rules out GNU OpenMP: its workers spin after every parallel region and starve the BLAS threads (a
784-256-128-10 matmul followed by a kernel took 8 ms instead of 0.28 ms on 2 cores). TBB's workers yield and start
a kernel in 1.6 us; the workqueue pool sleeps but takes 50-60 us to wake, which made parallel twins pay only above
millions of elements (2-core AMD EPYC, 2026-12-05)."""

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = THREADING_LAYERS
    numba.config.THREADING_LAYER = "default"

jit = partial(njit, cache=True, error_model="numpy")
"""Numba's default Python error model checks every division for zero, which stops the loops vectorising."""

BLOCK_ROWS = 64
"""Rows per block of a reduction: small enough that a batch of 128 rows already splits over two threads, large
enough that the partial sums stay a small fraction of the work."""

TWINS: dict[str, Callable] = {}
"""Every serial/parallel pair as ``family.function`` (``windows.im2col``), for the calibration and the tests."""


_counts = threading.local()
"""Numba's thread count per calling thread, as ``set_threads`` last set it there."""


def set_threads(count: int) -> None:
    """Run the calling thread's parallel twins on ``count`` threads (capped at Numba's pool, ``NUMBA_NUM_THREADS``).
    ``xpnet.threads`` is its one caller."""
    count = min(count, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(count)
    _counts.value = count


def threads_in_use() -> int:
    """Numba's thread count for the calling thread: as ``set_threads`` set it, else Numba's own (read once per
    thread). Every kernel call asks, and ``numba.get_num_threads`` from Python costs 0.6 us and takes Numba's
    start-up lock (``_own_start_up_lock``); the recorded count costs 0.05 us and no lock."""
    count = getattr(_counts, "value", None)
    if count is None:
        count = _counts.value = numba.get_num_threads()
    return count


def _own_start_up_lock() -> None:
    """In a forked child, give Numba's thread-pool start-up lock back to Numba to create anew for this process.

    Numba takes that lock at every Python-level thread call and cached parallel kernel load, and under the fork
    start method it is a semaphore shared with the parent and every sibling. A semaphore has no owner: a process
    killed while holding it (SIGKILL, the OOM killer) leaves the others hanging at their next thread call; the
    SIGKILL test's fork server hung so once (2026-12-07), its next child stuck in ``numba.get_num_threads``. A lock
    of each process's own still serialises its own threads' start-up, which is all that lock is for."""
    numba_parallel._backend_init_process_lock = None


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_own_start_up_lock)


def serial_and_parallel(py_func: Callable, threshold: int) -> Callable:
    """Compile ``py_func`` twice (serial, parallel) and return a wrapper that runs the parallel twin when its first
    argument has at least ``threshold`` elements and more than one thread is in use, else the serial one.

    The wrapper's ``threshold``, ``serial`` and ``parallel`` attributes are read at every call (tests set them).
    Numba's on-disk cache is keyed by the function's qualified name and signature, not by ``parallel``, so the
    parallel twin is compiled from a renamed copy; otherwise both would load whichever was cached first.
    """
    serial = jit(py_func)
    twin = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + "_parallel")
    twin.__qualname__ = py_func.__qualname__ + "_parallel"
    parallel = jit(parallel=True)(twin)

    def by_size(*args):
        use = args[0].size >= by_size.threshold and threads_in_use() > 1
        return (by_size.parallel if use else by_size.serial)(*args)

    by_size.__name__ = py_func.__name__
    by_size.__qualname__ = py_func.__qualname__
    by_size.__doc__ = py_func.__doc__
    by_size.serial = serial
    by_size.parallel = parallel
    by_size.threshold = threshold
    TWINS[f"{py_func.__module__.rsplit('.', 2)[-2]}.{py_func.__name__.lstrip('_')}"] = by_size
    return by_size


def contiguous_output(a):
    """``a`` itself when C-contiguous, else a C-contiguous scratch array to be copied back by ``write_back``."""
    return a if a.flags.c_contiguous else np.empty(a.shape, a.dtype)


def write_back(a, result) -> None:
    """Copy ``result`` into ``a`` when ``contiguous_output`` gave scratch for it."""
    if result is not a:
        a[...] = result


def contiguous_outputs(*arrays) -> list:
    """``contiguous_output`` of each array (None, an output a kernel may go without, stays None)."""
    return [None if a is None else contiguous_output(a) for a in arrays]


def scratch_write_backs(given, results) -> list:
    """(output, scratch) for each given output whose result of ``contiguous_outputs`` is scratch (None: no output):
    what ``write_back_all`` and a ``Launch`` copy back."""
    return [(a, result) for a, result in zip(given, results, strict=True) if a is not None and result is not a]


def write_back_all(given, results) -> None:
    """Copy each scratch result of ``contiguous_outputs`` into its given output."""
    for a, result in scratch_write_backs(given, results):
        a[...] = result


class Launch:
    """A kernel call prepared once, for arguments whose shapes and identities stay from call to call (a recorded
    step's workspaces and parameters), so that each call runs the kernel alone: the blocking, the scratch and the
    contiguity checks were done when it was prepared. An input that needed a contiguous copy is copied again into
    that copy before each call, and an output that needed scratch is written back after it.

    Between a step's kernels, a wrapper's few microseconds of Python and NumPy took tens of them, run on caches the
    kernels had just filled: the quick CNN's replayed step spent 0.17-0.19 ms a step outside its Numba kernels, 0.13
    of them in the two pooled convolutions' wrappers (2-core Intel Xeon VM, 2026-12-07)."""

    __slots__ = ("kernel", "args", "copies", "write_backs")

    def __init__(self, kernel: Callable, args: tuple, copies: list, write_backs: list) -> None:
        self.kernel, self.args, self.copies, self.write_backs = kernel, args, copies, write_backs

    def __call__(self) -> None:
        for copy, source in self.copies:
            copy[...] = source
        self.kernel(*self.args)
        for given, result in self.write_backs:
            given[...] = result


def contiguous_input(a, copies: list):
    """``a`` itself when C-contiguous, else C-contiguous scratch of its shape, noted in ``copies`` for a ``Launch``
    to fill from ``a`` before each call (so an eager call copies it once, not twice)."""
    if a.flags.c_contiguous:
        return a
    scratch = np.empty(a.shape, a.dtype)
    copies.append((scratch, a))
    return scratch


def row_blocks(rows: int) -> int:
    """The blocks of a column reduction over ``rows`` rows: ``BLOCK_ROWS`` each (the last one shorter), at least
    one; the same for either twin and any thread count."""
    return max(1, -(-rows // BLOCK_ROWS))


def block_partials(rows: int, out):
    """Room for the partial column sums of ``rows`` rows into ``out`` (1-D): one row per block of ``row_blocks``;
    with one block, ``out`` itself as a row (its sum in order is itself)."""
    blocks = row_blocks(rows)
    return out.reshape(1, -1) if blocks == 1 else np.empty((blocks, out.shape[0]), out.dtype)


@jit
def add_partial_row(partial, out, r):
    """out[r] = partial[0, r] + partial[1, r] + ... in order (float32 partials stay float32): row r of NumPy's
    ``partial.sum(axis=0)``, bit for bit. A kernel calls it for each row of ``out`` from a prange loop, so its
    parallel twin spreads the rows over the threads; NumPy's sum after the kernel ran on one thread, and took 93-98
    us of the quick CNN's step for 128 partial 72 x 32 weight gradients where it takes 41 us alone, and 32-35 us
    for 16 partial 9 x 8 ones (its code cold after the step's large kernels; 2-core Intel Xeon VM)."""
    for j in range(out.shape[1]):
        out[r, j] = partial[0, r, j]
    for k in range(1, partial.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] += partial[k, r, j]


@jit(inline="always")
def add_partials(partial, out):
    """out[j] = the blocks' partial sums partial[k, j] added up in order from zero, in partial's dtype: the same
    result for either twin and any thread count."""
    zero = partial.dtype.type(0.0)
    for j in range(out.shape[0]):
        total = zero
        for k in range(partial.shape[0]):
            total += partial[k, j]
        out[j] = total
