"""One rank of a heartbeat test (``test_heartbeat.py``): ``SILENCE STAY`` beats every 0.1 s for STAY seconds
(plus 0.3 s a rank, so that the ranks stop one after another), prints ``ready RANK PID`` at the start, ``lost RANK:
WHY`` when it loses its left rank (and exits 3) and ``done RANK`` at the end."""

import os
import sys
import time

from mpi4py import MPI

from xpnet.heartbeat import Heartbeat

world = MPI.COMM_WORLD


def lost(rank: int, why: str) -> None:
    os.write(1, f"lost {rank}: {why}\n".encode())
    os._exit(3)


beats = Heartbeat(world, lost, interval=0.1, silence=float(sys.argv[1]))
os.write(1, f"ready {world.rank} {os.getpid()}\n".encode())
time.sleep(float(sys.argv[2]) + 0.3 * world.rank)
beats.stop()
os.write(1, f"done {world.rank}\n".encode())
