"""The heartbeat ring in one process, without MPI: three ranks as threads, whose setup collectives a small
thread world stands in for. The ring connects past a stranger that reached a rank's port first, ranks that stop
on purpose are never reported, a rank whose connection closes is reported at once and one that falls silent after
the silence, each by the one rank watching it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from xpnet.heartbeat import Heartbeat, interface_addresses

SIZE = 3


class ThreadWorld:
    """The ranks of a world of ``SIZE`` threads; ``on_places`` sees every allgather's values before any rank
    gets them (the heartbeats' listening ports among them)."""

    def __init__(self, on_places: Callable[[list[Any]], None] = lambda values: None) -> None:
        self.values: list[Any] = [None] * SIZE
        self._arrived = threading.Barrier(SIZE, action=lambda: on_places(list(self.values)), timeout=30)
        self._read = threading.Barrier(SIZE, timeout=30)

    def allgather(self, rank: int, value: Any) -> list[Any]:
        self.values[rank] = value
        self._arrived.wait()
        values = list(self.values)
        self._read.wait()
        return values


class ThreadComm:
    """The collectives ``Heartbeat`` sets up with, for rank ``rank`` of a ``ThreadWorld``."""

    def __init__(self, world: ThreadWorld, rank: int) -> None:
        self.world, self.rank = world, rank

    def Get_rank(self) -> int:  # noqa: N802 (mpi4py's names)
        return self.rank

    def Get_size(self) -> int:  # noqa: N802
        return SIZE

    def allgather(self, value: Any) -> list[Any]:
        return self.world.allgather(self.rank, value)

    def bcast(self, value: Any, root: int = 0) -> Any:
        return self.allgather(value)[root]


def ring(world: ThreadWorld, interval: Callable[[int], float] = lambda rank: 0.05,
         silence: float = 5.0) -> tuple[list[Heartbeat], list[tuple[int, int, str]]]:
    """Every rank's heartbeat, made at once as MPI ranks would; and the list the losses they report land in, as
    (reporting rank, lost rank, why)."""
    lost: list[tuple[int, int, str]] = []
    made: list[Heartbeat | None] = [None] * SIZE

    def make(rank: int) -> None:
        made[rank] = Heartbeat(ThreadComm(world, rank), lambda left, why: lost.append((rank, left, why)),
                               interval(rank), silence)

    threads = [threading.Thread(target=make, args=(rank,)) for rank in range(SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(made), "the ring did not form"
    return made, lost


def wait_for(lost: list, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not lost and time.monotonic() < deadline:
        time.sleep(0.01)


def stop_all(beats: list[Heartbeat]) -> None:
    for beat in beats:
        beat.stop()


def test_this_hosts_addresses_come_first_and_loopback_last() -> None:
    addresses = interface_addresses()
    assert addresses and all(socket.inet_aton(address) for address in addresses)
    loopback = [address.startswith("127.") for address in addresses]
    assert loopback == sorted(loopback)


def test_the_ring_forms_past_a_stranger_and_ranks_that_stop_in_turn_are_not_reported() -> None:
    strangers = []

    def knock_first(values: list[Any]) -> None:  # connect to every port before the ranks do, with a wrong hello
        for value in values:
            if isinstance(value, tuple) and len(value) == 3:
                stranger = socket.create_connection(("127.0.0.1", value[2]), timeout=5)
                stranger.sendall(b"not a heartbeat, twenty bytes")
                strangers.append(stranger)

    beats, lost = ring(ThreadWorld(knock_first))
    try:
        assert len(strangers) == SIZE
        for rank, beat in enumerate(beats):  # each rank listens to the connection its left rank made
            assert beat._left.getpeername() == beats[rank - 1]._right.getsockname()
        for beat in beats:  # one after another, each still beating to the next while the one before has stopped
            time.sleep(0.2)
            beat.stop()
        time.sleep(0.2)
        assert lost == []
    finally:
        stop_all(beats)
        for stranger in strangers:
            stranger.close()


def test_a_rank_whose_connection_closes_is_reported_at_once_by_the_rank_watching_it() -> None:
    beats, lost = ring(ThreadWorld())
    try:
        time.sleep(0.2)
        closed = time.monotonic()
        beats[1]._right.close()  # as the kernel closes a killed process's sockets: no goodbye
        wait_for(lost, 5)
        assert lost == [(2, 1, "its connection closed without a goodbye: its process ended")]
        assert time.monotonic() - closed < 1
    finally:
        stop_all(beats)


@pytest.mark.parametrize("silence", [1.0, 2.0])
def test_a_rank_that_falls_silent_is_reported_after_the_silence(silence) -> None:
    # rank 0 beats once, then not for 60 s: rank 1, watching it, reports it after the silence
    beats, lost = ring(ThreadWorld(), interval=lambda rank: 60.0 if rank == 0 else 0.05, silence=silence)
    started = time.monotonic()
    try:
        wait_for(lost, silence + 5)
        assert lost == [(1, 0, f"no heartbeat for {silence:g} s: its host hung or its network is down")]
        assert silence - 0.5 < time.monotonic() - started < silence + 1
    finally:
        stop_all(beats)
