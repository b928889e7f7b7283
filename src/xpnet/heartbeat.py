"""Heartbeats between the ranks of an MPI job, so that a rank that dies or goes silent ends the job, named, instead
of hanging it.

Every rank sends a one-byte beat each ``interval`` seconds to the next rank of a ring, over a TCP connection of its
own, and listens for the previous rank's. The rank it listens to is reported (``on_lost(rank, why)``, which aborts
the job) at once when its connection closes without a goodbye (its process ended: killed, crashed), or once it has
been silent for ``silence`` seconds (its host hung or its network is down). Each rank is watched by exactly one
other, so a lost rank is named once; a rank that stops on purpose (the end of its run, or an abort it reports
itself) says goodbye first, and is no longer watched.

The beats travel over plain sockets, not MPI, on a thread that makes no MPI call: a step's Allreduce stalled on a
dead peer holds MPI (and, in a call that keeps the GIL, Python) and could otherwise keep the watcher from noticing,
and two threads inside MPI beside a dead TCP peer crashed MPICH. Only the setup is a collective on the communicator
given: where each rank listens, and which connections of the ring were made (a rank that cannot reach its right
neighbour at any of its addresses warns, and that link goes unwatched).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

BEAT, GOODBYE = b"\x01", b"\x00"
CONNECT_SECONDS = 2.0
"""How long a rank tries one of its right neighbour's addresses before the next."""
SIOCGIFADDR = 0x8915
"""Linux's ioctl for an interface's IPv4 address."""


def interface_addresses() -> list[str]:
    """This host's IPv4 addresses: its name's, then every interface's (Linux), loopback last. A rank on another
    host tries them in this order, the first that answers wins (a node may have several networks)."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        found += socket.gethostbyname_ex(socket.gethostname())[2]
    if sys.platform.startswith("linux"):
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, name in socket.if_nameindex():
                with contextlib.suppress(OSError):
                    request = struct.pack("256s", name.encode()[:15])
                    found.append(socket.inet_ntoa(fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)[20:24]))
    unique = list(dict.fromkeys(found))
    return [a for a in unique if not a.startswith("127.")] + [a for a in unique if a.startswith("127.")]


class Heartbeat:
    """The beating and watching thread of one rank of ``comm``. Constructing it is a collective (every rank of
    ``comm`` constructs one): it connects the ring, then starts the thread. ``on_lost(rank, why)`` is called on
    that thread when the left rank is lost."""

    def __init__(self, comm: Any, on_lost: Callable[[int, str], None], interval: float, silence: float) -> None:
        rank, size = comm.Get_rank(), comm.Get_size()
        self.left, right = (rank - 1) % size, (rank + 1) % size
        self.on_lost, self.interval, self.silence = on_lost, interval, silence
        with socket.create_server(("0.0.0.0", 0)) as listener:
            token = comm.bcast(os.urandom(16) if rank == 0 else None, root=0)
            host = socket.gethostname()
            places = comm.allgather((host, interface_addresses(), listener.getsockname()[1]))
            right_host, addresses, port = places[right]
            if right_host == host:  # the same host: loopback first
                addresses = ["127.0.0.1", *addresses]
            self._right = _connect(addresses, port, token + struct.pack("!i", rank))
            if self._right is None:
                print(f"xpnet: warning: rank {rank} cannot reach rank {right} for heartbeats at "
                      f"{', '.join(addresses)} (port {port}); if rank {right} goes silent, the job waits for TCP "
                      "to give up", file=sys.stderr, flush=True)
            # the left rank's connection is in the listener's queue if it says it connected (one from it, or a
            # stranger's first: a connection introduced by anything but the token and the left rank is refused)
            connected = comm.allgather(self._right is not None)
            self._left = _accept(listener, token + struct.pack("!i", self.left)) if connected[self.left] else None
        self._stop = threading.Event()
        self._wake, self._woken = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="xpnet-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Say goodbye to the right rank (this one stops on purpose) and end the thread; idempotent, and callable
        from the thread itself."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake.send(b"!")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5 * self.interval)

    # ------------------------------------------------------------------------------------------------ the thread
    def _run(self) -> None:
        """Beat and watch until stopped or the left rank is lost; say goodbye to the right rank either way (a rank
        that reports a loss is ending the job itself and must not be reported in turn), then report."""
        try:
            lost = self._beat_and_watch()
        finally:
            if self._right is not None:
                _send(self._right, GOODBYE)
            for sock in (self._right, self._left, self._wake, self._woken):
                if sock is not None:
                    sock.close()
        if lost is not None:
            self.on_lost(self.left, lost)

    def _beat_and_watch(self) -> str | None:
        """Beat to the right rank every ``interval`` and watch the left one until stopped: why the left rank is
        lost, or None. A left rank that said goodbye is no longer watched."""
        left = self._left
        heard, beaten = time.monotonic(), -self.interval
        while not self._stop.is_set():
            now = time.monotonic()
            if now - beaten >= self.interval:
                self._right = None if self._right is None else _send(self._right, BEAT)
                beaten = now
            news = "nothing" if left is None else _receive(left)
            if news == "gone":
                return "its connection closed without a goodbye: its process ended"
            if news == "goodbye":
                left = None
            elif news == "beat":
                heard = now
            elif left is not None and now - heard > self.silence:
                return f"no heartbeat for {self.silence:g} s: its host hung or its network is down"
            select.select([self._woken, *([left] if left else [])], [], [],
                          max(0.0, beaten + self.interval - time.monotonic()))
        return None


def _connect(addresses: list[str], port: int, hello: bytes) -> socket.socket | None:
    """A connection to the first of ``addresses`` that answers on ``port``, introduced by ``hello``; None when
    none does."""
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout=CONNECT_SECONDS)
        except OSError:
            continue
        try:
            sock.sendall(hello)
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        return sock
    return None


def _accept(listener: socket.socket, expected: bytes) -> socket.socket | None:
    """The first connection on ``listener`` introduced by ``expected`` (strangers' are closed); None when none
    comes within a few seconds."""
    deadline = time.monotonic() + 2 * CONNECT_SECONDS
    while time.monotonic() < deadline:
        listener.settimeout(deadline - time.monotonic())
        try:
            sock, _ = listener.accept()
        except OSError:
            return None
        sock.settimeout(CONNECT_SECONDS)
        try:
            hello = sock.recv(len(expected), socket.MSG_WAITALL)
        except OSError:
            hello = b""
        if hello == expected:
            sock.setblocking(False)
            return sock
        sock.close()
    return None


def _send(sock: socket.socket, message: bytes) -> socket.socket | None:
    """Send ``message`` without waiting; the socket, or None once its peer is gone (its watcher reports that)."""
    try:
        sock.send(message)
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        sock.close()
        return None
    return sock


def _receive(sock: socket.socket) -> str:
    """What the left rank has sent since the last look: ``beat``, ``goodbye``, ``gone`` (closed without a
    goodbye) or ``nothing``."""
    try:
        data = sock.recv(4096)
    except (BlockingIOError, InterruptedError):
        return "nothing"
    except OSError:
        return "gone"
    if GOODBYE in data:
        return "goodbye"
    return "beat" if data else "gone"
