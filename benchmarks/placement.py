"""Whether two of this machine's cores share a last-level cache right now, measured: one core reads 2 MiB that the
other has just written, against the writer reading it back itself.

Why: a virtual machine's vCPUs run on whichever host cores the host picks, and it moves them. On the 2-core AMD
EPYC VM the two vCPUs share an L3 cache for a while (the other core reads the data in 0.045-0.06 ms, as fast as the
writer), then sit in two (0.08-0.13 ms, fetched over the chip's fabric), for seconds at a time. In the second
placement every kernel whose threads read what the other thread wrote (each layer reads the previous layer's
output) pays that fabric, and a two-thread training step runs no faster than on one thread. The threads section
records the placement before and after each measurement, so that a slow figure can be told apart from a slow
placement; ``python -m benchmarks.placement`` prints it as it changes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SIZE_BYTES = 2 << 20
"""Larger than a core's L2 (1 MiB here), well inside one L3: a read from a shared L3 or from the other's."""
SPLIT_RATIO = 1.6
"""Reading another core's data more than this many times slower than the writer's own: the cores share no cache."""


def _on_core(core: int, work: Callable[[], Any]) -> float:
    """Seconds ``work`` takes on a thread pinned to ``core`` (the caller's affinity untouched)."""
    seconds: list[float] = []

    def pinned() -> None:
        os.sched_setaffinity(0, {core})  # 0: the calling thread only
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)

    thread = threading.Thread(target=pinned)
    thread.start()
    thread.join()
    return seconds[0]


def cross_core_read(writer: int, reader: int, rounds: int = 15) -> dict[str, float]:
    """Median milliseconds for ``reader`` to read a buffer that ``writer`` has just filled (its maximum: vector
    loads at memory speed), and for ``writer`` itself."""
    buffer = np.zeros(SIZE_BYTES // 4, dtype=np.float32)
    local, cross = [], []
    for value in range(rounds):
        for who, times in ((writer, local), (reader, cross)):
            _on_core(writer, lambda value=value: buffer.fill(value))
            times.append(_on_core(who, buffer.max))
    return {"local ms": 1e3 * statistics.median(local), "cross ms": 1e3 * statistics.median(cross)}


def placement(rounds: int = 15) -> dict[str, Any]:
    """The first two cores this process may use: their read times and whether they share a cache now (None with
    the reason when the process has a single core)."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return {"shared cache": None, "why": f"one usable core ({usable[0]})"}
    times = cross_core_read(usable[0], usable[1], rounds)
    return {"cores": usable[:2], **times, "shared cache": times["cross ms"] <= SPLIT_RATIO * times["local ms"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.placement", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default 10)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between measurements (default 0.5)")
    args = parser.parse_args(argv)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        now = placement()
        if now["shared cache"] is None:
            raise SystemExit(f"placement: nothing to measure, {now['why']}")
        print(f"{time.strftime('%H:%M:%S')} cores {now['cores']}: written by one, read by the other in "
              f"{now['cross ms']:.3f} ms, by the writer in {now['local ms']:.3f} ms: "
              f"{'one shared cache' if now['shared cache'] else 'separate caches'}", flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    main()
