"""The compute threads' short scheduler slices (``xpnet.scheduling``) against the kernel's, beside each load.

``python -m benchmarks.sched_slice [--workloads mlp,cnn] [--rounds 10] [--steps 100] [--data-dir DIR] [--out
FILE]``: for each workload (the MLP at batch 128, the quick CNN at batch 64), at every core and at one thread, and
beside each load of ``loads`` (nothing, the threads section's low-priority PyTorch training, two ``nice -n 19`` busy
loops, one busy process at normal priority, a second copy of the same training), one worker process times
``--rounds`` pairs of blocks of ``--steps`` training steps, one block with ``$XPNET_SCHED_SLICE``'s slice and one
with the kernel's, in alternating order. Both settings share the process, the host's placement of the vCPUs and
the load's phase; the result is each setting's median step and the median (range) of the pairs' ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.config import make_config
from benchmarks.report import print_json
from benchmarks.threads import (
    BUSY,
    SETTLE_SECONDS,
    cores,
    low_priority_torch,
    step_seconds,
    training_batch,
    worker_command,
)
from benchmarks.threads import measure as run_beside


def loads(workload: str, data_dir: str) -> dict[str, list[list[str]]]:
    """Load name -> the commands run beside a measurement of ``workload``."""
    config = make_config(False, Path(data_dir), "cpu")
    nice_busy = ["nice", "-n", "19", *BUSY]
    return {"nothing": [], "a low-priority PyTorch training": low_priority_torch(config)([]),
            "two nice -n 19 busy processes": [nice_busy, nice_busy], "one busy process": [BUSY],
            "a second copy of the same training": [worker_command(workload, "xpnet", config, 1_000_000)]}


def alternate(workload: str, rounds: int, steps: int, data_dir: str) -> dict[str, Any]:
    """Median step milliseconds with the short slices and with the kernel's, in alternating blocks, and the
    pairs' ratios (short / kernel's)."""
    from xpnet import scheduling

    backend, model, workspace, stats, x, y = training_batch(workload, False, data_dir)
    short = scheduling.requested_slice_us()
    step_seconds(model, workspace, stats, x, y, 0, warmup=20)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    ratios = []
    for round_ in range(rounds):
        medians = {}
        for on in (True, False) if round_ % 2 == 0 else (False, True):
            scheduling.apply_slice(short if on else None)
            block = step_seconds(model, workspace, stats, x, y, steps)
            medians[on], seconds[on] = statistics.median(block), seconds[on] + block
        ratios.append(medians[True] / medians[False])
    return {"short slices ms": 1e3 * statistics.median(seconds[True]),
            "kernel's slices ms": 1e3 * statistics.median(seconds[False]),
            "ratio median": statistics.median(ratios), "ratio range": [min(ratios), max(ratios)]}


def measure(workloads: list[str], rounds: int, steps: int, data_dir: str) -> dict[str, Any]:
    """Every workload beside every load at every core and at one thread, each its own worker process with the
    load around it."""
    rows = []
    for workload, count in itertools.product(workloads, sorted({cores(), 1}, reverse=True)):
        for name, commands in loads(workload, data_dir).items():
            worker = [sys.executable, "-m", "benchmarks.sched_slice", "worker", workload, str(rounds), str(steps),
                      data_dir]
            result = run_beside(worker, str(count), commands, SETTLE_SECONDS[False])
            rows.append({"workload": workload, "load": name, "threads": count, "at": time.strftime("%H:%M:%S"),
                         **result})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"rounds": rounds, "steps_each": steps, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        workload, rounds, steps, data_dir = argv[1:]
        print(json.dumps(alternate(workload, int(rounds), int(steps), data_dir)), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sched_slice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="mlp,cnn", help="comma-separated: mlp (batch 128), cnn (quick, 64)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    print_json(measure(args.workloads.split(","), args.rounds, args.steps, args.data_dir), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
