"""The one owner of the process's compute threads: Numba's kernels and the BLAS library's matrix products.

``--threads N`` or ``$XPNET_THREADS=N`` pins both pools at N threads. The default, ``auto``, gives them every core
this process may use (its CPU affinity and its container's CPU quota, ``xpnet.cpu_quota``; fewer where
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` or ``NUMBA_NUM_THREADS`` ask for fewer), shared
out among the MPI ranks on this machine, and lets a ``ThreadGovernor`` (``xpnet.governor``) lower and raise the
count during training to whatever is fastest while other work takes cores away. A pinned count never exceeds what
``auto`` would start from (``parse_setting``).

The setting is process-wide: the command line sets it once (``configure``); a library user's first ``Model.fit``
reads it from the environment.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xpnet import scheduling
from xpnet.cpu_quota import cpu_quota
from xpnet.errors import ConfigError

THREADS_ENV = "XPNET_THREADS"
LIMIT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
"""Thread limits the user may already have set for the libraries: ``auto`` never goes above them."""
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
"""The ranks on this node, as MPICH/Intel MPI (Hydra), Open MPI and MVAPICH tell each rank they start."""


BLAS_IDLE_ENV = "OPENBLAS_THREAD_TIMEOUT"
BLAS_IDLE_TIMEOUT = "16"
"""OpenBLAS's workers spin for 2**n cycles after each matmul before they sleep (n = 28 by default: about 0.1 s).
Numba's kernels between the matmuls then wait for a core those workers hold: on the 2-core AMD EPYC VM a parallel
max pool right after a conv matmul took 0.26 ms instead of 0.13 ms, and the quick CNN's training step 6.9 ms
instead of 4.6 ms at 2 threads with n = 12. n = 16 (about 25 us) keeps them awake between back-to-back matmuls:
in interleaved epoch A/Bs n = 12 ran 1-4% slower and n = 18 5-16% slower. OpenBLAS reads it when NumPy loads it,
and again when told to (``restart_openblas_workers``)."""

_blas_idle: str | None = None
"""What ``quiet_blas_workers`` found, as ``xpnet info`` says it (None until it has run)."""


def quiet_blas_workers() -> None:
    """Set OpenBLAS's idle spin (``BLAS_IDLE_TIMEOUT``) unless the user set it. ``import xpnet`` does it first;
    where NumPy was imported before (most scripts start with it), OpenBLAS has already read its environment, so
    it is made to read it again and restart its workers. ``blas_idle()`` says which happened."""
    global _blas_idle
    if _blas_idle is not None:
        return
    if BLAS_IDLE_ENV in os.environ or "numpy" not in sys.modules:
        _blas_idle = f"{BLAS_IDLE_ENV}={os.environ.setdefault(BLAS_IDLE_ENV, BLAS_IDLE_TIMEOUT)}"
        return
    os.environ[BLAS_IDLE_ENV] = BLAS_IDLE_TIMEOUT
    if restart_openblas_workers():
        _blas_idle = f"{BLAS_IDLE_ENV}={BLAS_IDLE_TIMEOUT} (NumPy came first: OpenBLAS re-read it)"
    else:
        _blas_idle = (f"the BLAS library's default spin: NumPy was imported before xpnet and its BLAS cannot re-read "
                      f"{BLAS_IDLE_ENV} (import xpnet first, or set {BLAS_IDLE_ENV}={BLAS_IDLE_TIMEOUT})")


def restart_openblas_workers() -> bool:
    """Make every loaded OpenBLAS with its own thread pool re-read its environment and stop its workers; its next
    threaded matmul starts new ones, which read the idle spin again. These are OpenBLAS's own entry points (what
    it runs around ``fork``); True where at least one library had them."""
    from threadpoolctl import ThreadpoolController

    restarted = False
    for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers:
        read_env = getattr(lib.dynlib, "openblas_read_env", None)
        stop_workers = getattr(lib.dynlib, "blas_thread_shutdown_", None)
        if lib.threading_layer != "pthreads" or read_env is None or stop_workers is None:
            continue
        read_env.restype = None
        read_env()
        stop_workers()
        restarted = True
    return restarted


def blas_idle() -> str:
    """OpenBLAS's idle spin as this process set it, for ``xpnet info``."""
    return str(_blas_idle)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def node_ranks(communicator: Any = None, environ: Mapping[str, str] | None = None) -> int:
    """How many ranks of this MPI job run on this machine: the communicator's count (MPI's shared-memory split),
    else the launcher's environment; 1 outside MPI."""
    if communicator is not None:
        return communicator.local_size
    environ = os.environ if environ is None else environ
    for name in LOCAL_SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def auto_threads(cores: int, ranks: int, all_cores: int, environ: Mapping[str, str] | None = None,
                 quota: float | None = None) -> int:
    """The ``auto`` count: ``cores`` usable, shared out among ``ranks`` ranks on the node (at least 1 each) unless
    a launcher already bound each rank to its share (fewer usable cores than the machine's ``all_cores``); no more
    than each rank's share of a cgroup CPU ``quota`` (``xpnet.cpu_quota``: the ranks of a container share its
    quota), rounded up; and no more than a thread limit set in the environment."""
    environ = os.environ if environ is None else environ
    count = max(1, cores // ranks) if cores >= all_cores else cores
    if quota is not None:
        count = min(count, math.ceil(quota / ranks))
    limits = [int(environ[name]) for name in LIMIT_VARIABLES if environ.get(name, "").isdigit()]
    return max(1, min([count, *(limit for limit in limits if limit > 0)]))


def counted(number: float, noun: str) -> str:
    """``number noun`` in messages, the noun plural unless the number is 1: ``1 thread``, ``2 cores``, ``1.5 CPUs``."""
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class ThreadSetting:
    """What the user asked for: ``count`` threads, ``pinned`` (a number was given) or governed up to ``count``
    (auto); ``source`` says where it came from, for messages."""

    count: int
    pinned: bool
    source: str

    def describe(self, in_use: int) -> str:
        """A short phrase for result lines: ``2 threads (pinned)`` or ``1 of 2 threads (auto)``."""
        if self.pinned:
            return f"{counted(self.count, 'thread')} (pinned by {self.source})"
        return f"{in_use} of {counted(self.count, 'thread')} (auto)"


def parse_setting(value: str | int | None, ranks: int = 1, environ: Mapping[str, str] | None = None,
                  cores: int | None = None, quota: float | None = None) -> ThreadSetting:
    """The setting from ``--threads`` (``value``), else ``$XPNET_THREADS``, else ``auto``; ConfigError for anything
    but ``auto`` or a whole number of at least 1. ``cores`` and ``quota`` are the cores this process may use and
    its cgroup CPU quota (default, with ``cores`` None: ``usable_cores()`` and ``cpu_quota()``).

    A pinned count above this process's share of the cores (shared among the ``ranks`` on the machine and within
    the quota as ``auto`` shares them) is lowered to that share, with a warning: the threads beyond the cores wait
    for one another at every matrix product. On the 2-core Intel Xeon VM (2026-12-06) one epoch of ``xpnet train
    mnist`` took 1.1 s at ``--threads 2``, 18.0 s at 3 and 67 s at 8; two MPI ranks with ``--threads 2`` each took
    19.1 s for it."""
    environ = os.environ if environ is None else environ
    if cores is None:
        cores, quota = usable_cores(), cpu_quota()
    source = "--threads"
    if value is None:
        value, source = environ.get(THREADS_ENV) or "auto", f"${THREADS_ENV}"
    text = str(value).strip().lower()
    if text == "auto":
        return ThreadSetting(auto_threads(cores, ranks, os.cpu_count() or 1, environ, quota), False, "auto")
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{source} {value!r}: give a whole number of threads (at least 1) to pin the count, or "
                          f"auto (default: every core, lowered while other work takes cores)")
    share = auto_threads(cores, ranks, os.cpu_count() or 1, {}, quota)
    if int(text) > share:
        among = (f" (its share of {cores} among {ranks} ranks)" if ranks > 1 and share < cores else
                 f" (a CPU quota of {quota:g})" if quota is not None and share < cores else "")
        warnings.warn(f"{source} {int(text)} asks for more threads than the {counted(share, 'core')} "
                      f"this process may use{among}; threads beyond them would wait for one another at every matrix "
                      f"product (many times slower): pinned at {share}", stacklevel=2)
        return ThreadSetting(share, True, source)
    return ThreadSetting(int(text), True, source)


class ThreadPools:
    """Sets Numba's and the BLAS libraries' thread counts together (Numba's is capped at the pool it started
    with, ``NUMBA_NUM_THREADS``; Numba's count is per calling thread: call ``set`` from the training thread)."""

    def __init__(self) -> None:
        self.blas: list[Any] = []
        self.count = 0

    def set(self, count: int) -> None:
        """Run matrix products and Numba kernels on ``count`` threads from now on (every BLAS library loaded by
        then: they are looked up anew, about a millisecond, since SciPy or PyTorch may have brought their own)."""
        from threadpoolctl import ThreadpoolController

        from xpnet.kernels.numba_cpu import set_threads

        set_threads(count)
        self.blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        for lib in self.blas:
            lib.set_num_threads(count)
        self.count = count

    def describe(self) -> str:
        """Which BLAS and threading layers run the threads, for ``xpnet info``."""
        import numba

        blas = ", ".join(f"{lib.internal_api} {lib.version} ({getattr(lib, 'threading_layer', 'threads')})"
                         for lib in self.blas) or "none found"
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel kernel or thread count set yet
            layer = numba.config.THREADING_LAYER
            if layer == "default":
                layer = f"first available of {', '.join(numba.config.THREADING_LAYER_PRIORITY)}"
            layer += " (not started)"
        quota = cpu_quota()
        return (f"BLAS {blas}, idle workers: {blas_idle()}; Numba threading layer {layer}, pool of "
                f"{numba.config.NUMBA_NUM_THREADS}; scheduler slice: {scheduling.slice_status()}; cgroup CPU quota: "
                + ("none" if quota is None else counted(quota, "CPU")))


_setting: ThreadSetting | None = None
_pools: ThreadPools | None = None


def configure(value: str | int | None = None, communicator: Any = None) -> ThreadSetting:
    """Set the process's thread setting from ``--threads`` (``value``; None: ``$XPNET_THREADS`` or auto) and
    apply its count now; the governor of the next training starts from it (a new setting, a new governor)."""
    global _setting
    _setting = parse_setting(value, node_ranks(communicator))
    pools().set(_setting.count)
    scheduling.shorten_slices()
    return _setting


def setting() -> ThreadSetting:
    """The process's setting (configured from the environment on first use)."""
    return _setting if _setting is not None else configure()


def pools() -> ThreadPools:
    """The process's thread pools (found once)."""
    global _pools
    if _pools is None:
        _pools = ThreadPools()
    return _pools


def describe() -> str:
    """The setting and the count in use now, for result lines: ``1 of 2 threads (auto)``."""
    return setting().describe(pools().count)
