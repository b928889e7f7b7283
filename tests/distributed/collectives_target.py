"""One rank of ``test_heartbeat.py``'s collectives test: for each of the ``Communicator``'s collectives, rank 1
arrives LATE seconds after rank 0, and rank 0 prints ``NAME TICKS``: how often a thread of its own (as the heartbeat
thread is) woke every 10 ms while it waited there.

    mpiexec -n 2 python collectives_target.py LATE
"""

import os
import sys
import threading
import time

import numpy as np

from xpnet.backend import get_backend
from xpnet.distributed import Communicator

late = float(sys.argv[1])
world = Communicator()
world.attach(get_backend("cpu", "float64", seed=0))
ticks = 0


def tick() -> None:
    global ticks
    while True:
        ticks += 1
        time.sleep(0.01)


threading.Thread(target=tick, daemon=True).start()
collectives = {
    "any": lambda: world.any(False),
    "sum_host": lambda: world.sum_host(np.ones(3)),
    "allreduce_mean": lambda: world.allreduce_mean(np.ones(1000)),
    "barrier": world.barrier,
    "check_same": lambda: world.check_same({"settings": {"lr": 0.1}}),
}
for name, collective in collectives.items():
    world.barrier()
    if world.rank == 1:
        time.sleep(late)
    before = ticks
    collective()
    if world.rank == 0:
        os.write(1, f"{name} {ticks - before}\n".encode())
world.close()
