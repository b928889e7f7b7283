"""Heartbeats between the ranks of an MPI job, so that a rank that goes silent ends the job instead of hanging it.

A killed rank is noticed by the launcher, which ends the job; but a host whose network goes down (or that hangs)
leaves every other rank waiting in the step's Allreduce for TCP to give up, which takes many minutes. So every
rank, on a thread of its own and its own communicator, sends a one-byte beat to the next rank of a ring every
``interval`` seconds and listens for the previous rank's: one that is not heard from for ``silence`` seconds, or
whose connection MPI finds broken, is reported (``on_silence(rank)``, which aborts the job). Each rank is watched
by exactly one other, so a silent rank is named once; a rank that stops on purpose (the end of its run) says so
with a last beat, and is no longer watched.

Sending and listening are nonblocking calls made on this thread only, so they never wait on the network: this needs
MPI_THREAD_MULTIPLE (mpi4py asks for it; MPICH and Open MPI provide it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ALIVE, STOPPING = np.ones(1, np.int8), np.zeros(1, np.int8)
POLL_SECONDS = 0.05


class Heartbeat:
    """The beating and listening thread of one rank on ``comm`` (which it duplicates): started at once."""

    def __init__(self, comm: Any, on_silence: Callable[[int], None], interval: float,
                 silence: float) -> None:
        self.comm = comm.Dup()
        rank, size = comm.Get_rank(), comm.Get_size()
        self.left, self.right = (rank - 1) % size, (rank + 1) % size
        self.on_silence, self.interval, self.silence = on_silence, interval, silence
        self.heard: float | None = time.monotonic()
        """When the left rank was last heard from; None once it has said it stops (or MPI found it gone: -inf)."""
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._beat, name="xpnet-heartbeat", daemon=True),
                         threading.Thread(target=self._watch, name="xpnet-watchdog", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Send the last beat (this rank stops on purpose) and end the threads; idempotent."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5 * self.interval)

    def _watch(self) -> None:
        """Report the left rank once it has been silent too long. Apart from the MPI calls, which can stall (MPI
        serialises its threads, and a step's Allreduce waiting on a dead link may hold it), so that nothing
        delays the report."""
        while not self._stop.wait(POLL_SECONDS):
            heard = self.heard
            if heard is not None and time.monotonic() - heard > self.silence:
                self.on_silence(self.left)
                return

    def _beat(self) -> None:
        """Send a beat every ``interval`` seconds and take the left rank's as they come."""
        inbox = np.empty(1, np.int8)
        listening = self.comm.Irecv(inbox, source=self.left, tag=1)
        sending: list[Any] = []
        beaten = time.monotonic()
        while not self._stop.wait(POLL_SECONDS):
            now = time.monotonic()
            if now - beaten >= self.interval:
                sending = [request for request in sending if not _done(request)]
                sending.append(self.comm.Isend(ALIVE, dest=self.right, tag=1))
                beaten = now
            if listening is None:
                continue
            try:
                arrived = listening.Test()
            except Exception:  # MPI found the connection to the left rank broken: as good as silent
                self.heard = -np.inf
                return
            if arrived:
                self.heard = now if inbox[0] else None
                listening = self.comm.Irecv(inbox, source=self.left, tag=1) if inbox[0] else None
        self._say_goodbye(listening, inbox)

    def _say_goodbye(self, listening: Any, inbox: np.ndarray) -> None:
        """Tell the right rank that this one stops on purpose; take the left one's beats until it says the same
        (for up to ``silence`` / 10 s: it may still be busy), so that none is left unreceived when MPI ends."""
        sent = self.comm.Isend(STOPPING, dest=self.right, tag=1)
        deadline = time.monotonic() + max(self.interval, self.silence / 10)
        while listening is not None and time.monotonic() < deadline:
            if _done(listening):
                listening = self.comm.Irecv(inbox, source=self.left, tag=1) if inbox[0] else None
            else:
                time.sleep(POLL_SECONDS / 10)
        if listening is not None:
            listening.Cancel()
            _done(listening)
        while not _done(sent) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS / 10)


def _done(request: Any) -> bool:
    """Whether a request has completed; one whose peer is gone counts as done (that peer's watcher reports it)."""
    try:
        return bool(request.Test())
    except Exception:
        return True
