"""Data-parallel training over MPI: the communicator every rank of an ``mpiexec`` (or ``srun``) job trains through.

One ``Communicator`` is the whole distributed side of a run: which rank this process is (and its index on its
node, which picks its GPU), the one collective per step (the flat gradient buffer summed in place, then scaled by
1 / ranks: MPI's Allreduce on host arrays, NCCL on the GPU), the small host reductions the training loop needs
(running loss totals, an agreed stop), a check at start that every rank has the same settings and data, and the
fault rules, so that no rank is left waiting in a collective: a rank that fails waits a bounded time for the
others to fail with it, then aborts the job; a rank that dies or goes silent (its process killed, its host's network
down) is found by the heartbeats (``xpnet.heartbeat``) and the job aborted, with one line naming the rank and its
host.

A single-process run has no communicator at all (None), so its training step is unchanged.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from xpnet.errors import ConfigError, XpnetError
from xpnet.heartbeat import Heartbeat

LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
"""World sizes set by MPICH/Intel MPI (Hydra), Open MPI, MVAPICH and Slurm's ``srun`` in each rank they start."""

LAUNCHER_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
"""This process's rank, as the same launchers set it."""

FAULT_WAIT_SECONDS = 10.0
"""How long a failing rank waits for every other rank to fail with it before it aborts the whole job."""
FORWARD_SECONDS = 1.0
"""How long a rank waits between writing its error line and aborting the job: the launcher reads a rank's output
and its abort request from different pipes, and once it has the request it ends the job without reading the rest."""

HEARTBEAT_SECONDS, SILENCE_SECONDS = 1.0, 30.0
"""Every rank sends a heartbeat to the next each second; one whose connection closes without a goodbye is lost at
once, one not heard from for 30 s (``$XPNET_SILENCE_SECONDS``) is declared lost (longer than any pause a busy rank's
own thread could take, shorter than TCP's minutes of retrying); either way the job is aborted."""
SILENCE_ENV = "XPNET_SILENCE_SECONDS"
MIN_SILENCE_SECONDS = 5 * HEARTBEAT_SECONDS
"""The shortest silence accepted: a few missed heartbeats, so that one late beat never ends a job."""


def silence_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long a rank may go unheard before it is declared lost: ``$XPNET_SILENCE_SECONDS``, else
    ``SILENCE_SECONDS``. Hosts known to pause for longer (heavy swapping, live migration) raise it; a job that must
    give up on a lost host sooner lowers it. ConfigError for anything but a number of seconds from
    ``MIN_SILENCE_SECONDS``."""
    environ = os.environ if environ is None else environ
    text = environ.get(SILENCE_ENV, "").strip()
    if not text:
        return SILENCE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= MIN_SILENCE_SECONDS):
        raise ConfigError(f"${SILENCE_ENV} {text!r}: give the seconds a rank may go unheard before the job is "
                          f"aborted, at least {MIN_SILENCE_SECONDS:g} (unset: {SILENCE_SECONDS:g})")
    return seconds

INSTALL_HINT = "pip install 'xpnet[mpi]' (mpi4py and the mpich wheel; a system MPI is used when present)"


class DistributedError(XpnetError, RuntimeError):
    """The MPI job cannot go on: MPI is missing or a rank failed."""


def launched_ranks(environ: Mapping[str, str] | None = None) -> int:
    """The job's rank count as the launcher (mpiexec, srun) tells it through the environment; 1 when none did."""
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def launched_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank as the launcher tells it through the environment (known before MPI starts, so that
    rank 0 alone can print the lines every rank would print alike); 0 when none did."""
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_RANK_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _digest(value: Any) -> str:
    """A short hash of an array's bytes (with shape and dtype), or of anything else as sorted JSON."""
    if isinstance(value, np.ndarray):
        value = np.ascontiguousarray(value)
        data = f"{value.shape}{value.dtype.str}".encode() + value.tobytes()
    else:
        data = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class Communicator:
    """The MPI world (``MPI.COMM_WORLD``) of a data-parallel run, as one rank sees it.

    ``local_rank`` is this rank's index among the ``local_size`` ranks of its node (the command line makes it pick
    the GPU: ``xpnet.backend.select_device``; the ranks share the node's cores: ``xpnet.threads``);
    ``attach(backend)`` takes the backend's way for the gradients to travel (``backend.allreducer``: MPI's Allreduce
    for host arrays, NCCL for CuPy ones; the Trainer calls it).
    """

    def __init__(self) -> None:
        silence = silence_seconds()  # a bad setting is refused before MPI starts
        from mpi4py import MPI

        self.mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.hosts: list[str] = self.comm.allgather(MPI.Get_processor_name())
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()  # local_size: threads.node_ranks
        node.Free()
        # failing ranks meet on their own communicator, so that waiting there never mixes with a step's collective
        self.faults = self.comm.Dup()
        self.scale = 1.0 / self.size
        self._sums: dict[str, Callable[[Any], None]] = {}
        """Each attached backend's in-place sum over the ranks, by backend name (made once: it may be a collective)."""
        self._device_sum: Callable[[Any], None] | None = None
        self._heartbeat: Heartbeat | None = None
        # a lost rank is reported from the heartbeat thread, whose MPI_Abort may meet a step's Allreduce
        if self.size > 1 and MPI.Query_thread() == MPI.THREAD_MULTIPLE:
            self._heartbeat = Heartbeat(self.comm, self._lost, HEARTBEAT_SECONDS, silence)
            atexit.register(self.close)

    def where(self, rank: int) -> str:
        """``rank N on host NAME``: how a rank is named in error lines."""
        return f"rank {rank} on host {self.hosts[rank]}"

    def close(self) -> None:
        """Stop this rank's heartbeats (its watcher stops waiting for it); called at exit, before MPI ends."""
        if self._heartbeat is not None:
            self._heartbeat.stop()

    # ----------------------------------------------------------------------------------------------- collectives
    def attach(self, backend: Any) -> None:
        """Sum arrays of ``backend`` the way it says (``backend.allreducer``: MPI on host arrays, NCCL on CuPy's
        stream for the GPU); made on the first attach of each backend, a collective for some (NCCL)."""
        if backend.name not in self._sums:
            self._sums[backend.name] = backend.allreducer(self.comm, self.rank, self.size)
        self._device_sum = self._sums[backend.name]

    def allreduce_mean(self, array: Any) -> None:
        """Replace ``array`` (a contiguous array of the attached backend, such as the flat gradient row) by its mean
        over ranks, in place: one sum, then one scale."""
        self._device_sum(array)
        array *= array.dtype.type(self.scale)

    def sum_host(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum over ranks of a small float64 host array (running totals, flags)."""
        total = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.mpi.IN_PLACE, total, op=self.mpi.SUM)
        return total

    def barrier(self) -> None:
        """Wait until every rank is here."""
        self.comm.Barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any. A sum of buffers, as every collective here: mpi4py's
        pickled ``allreduce`` keeps the GIL while it waits, so a rank waiting there for a dead one would keep its
        heartbeat thread from ending the job."""
        return bool(self.sum_host(np.array([float(flag)]))[0] > 0)

    # ------------------------------------------------------------------------------------------------- checks
    def check_same(self, parts: Mapping[str, Any]) -> None:
        """ConfigError on every rank unless every rank holds the same ``parts`` (arrays or JSON-able values),
        compared by hash; the message names the first part that differs and the ranks holding other values."""
        mine = {name: _digest(value) for name, value in parts.items()}
        everyone = self.comm.allgather(mine)
        for name, digest in everyone[0].items():
            others = [rank for rank, digests in enumerate(everyone) if digests.get(name) != digest]
            if others:
                who = f"rank {others[0]} differs" if len(others) == 1 else f"ranks {', '.join(map(str, others))} differ"
                raise ConfigError(
                    f"the ranks of this MPI job disagree on the {name}: {who} from rank 0 (hash {digest}); start "
                    "every rank with the same command, data files and xpnet version"
                )

    # -------------------------------------------------------------------------------------------------- faults
    @contextmanager
    def fail_together(self) -> Iterator[None]:
        """Run the block; if it fails on this rank, wait up to FAULT_WAIT_SECONDS for every rank to fail too (a
        collective error: each exits with its own message) and otherwise abort the whole job, so that no rank
        waits forever in a collective for one that is gone."""
        try:
            yield
        except BaseException as exc:
            if self.size > 1 and not self._all_arrive(FAULT_WAIT_SECONDS):
                code = getattr(exc, "exit_code", 1)
                print(f"xpnet: error: {self.where(self.rank)} failed alone ({type(exc).__name__}: {exc}); aborting the "
                      "other ranks of the MPI job", file=sys.stderr, flush=True)
                self._abort(code)
            raise

    def _lost(self, rank: int, why: str) -> None:
        """A rank died or went silent (the heartbeats found it): say which, on which host and why, and end the
        job."""
        print(f"xpnet: error: {self.where(rank)} stopped answering ({why}); aborting the MPI job (resume from the "
              "last checkpoint with --resume)", file=sys.stderr, flush=True)
        # MPI_Abort asks the launcher to end every rank; cut off from it (this host's network down), it may fail or
        # never return, so the kernel ends this rank a little later in any case (SIGALRM's default action)
        signal.alarm(int(FAULT_WAIT_SECONDS))
        self._abort(1)

    def _abort(self, code: int) -> None:
        """End the whole job with ``code``, once the launcher has had time to forward this rank's error line. The
        heartbeats say goodbye first: this rank's end is reported by itself, not by the rank watching it."""
        self.close()
        time.sleep(FORWARD_SECONDS)
        self.comm.Abort(code)

    def _all_arrive(self, seconds: float) -> bool:
        """Whether every rank reaches this point within ``seconds`` (each failing rank calls it once)."""
        try:
            request = self.faults.Ibarrier()
            deadline = time.monotonic() + seconds
            while not request.Test():
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        except self.mpi.Exception:
            return False
        return True


def connect(required: bool) -> Communicator | None:
    """The communicator of this MPI job: when ``required`` (``--distributed``) or a launcher started several
    ranks; None for a single process. DistributedError when mpi4py (or its MPI library) is missing."""
    if not required and launched_ranks() < 2:
        return None
    try:
        return Communicator()
    except (ImportError, RuntimeError) as exc:
        started = "--distributed was given" if required else f"this process is one of {launched_ranks()} MPI ranks"
        raise DistributedError(f"{started}, but MPI is not usable here ({exc})", hint=INSTALL_HINT) from None
