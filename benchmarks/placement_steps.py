"""The quick CNN's training step on every core and on one, grouped by where the host ran the cores meanwhile.

``python -m benchmarks.placement_steps [--rounds 12] [--steps 150] [--data-dir DIR] [--out FILE]``: one process
builds the quick CNN (batch 64) and, each round, probes the placement (``benchmarks.placement``), times ``--steps``
steps on every core and then on one thread, and probes again. Rounds whose two probes agree are grouped: the median
step on each count, and their ratio, with the cores in one shared cache and with the cores in separate caches
(rounds whose probes disagree, the host having moved a vCPU meanwhile, are listed but not grouped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.placement import placement
from benchmarks.report import print_json
from benchmarks.threads import cores, step_seconds, training_batch
from xpnet import threads


def compare(rounds: int, steps: int, data_dir: str) -> dict[str, Any]:
    """Every round's probes and median step milliseconds on every core and on one; medians by placement."""
    backend, model, workspace, stats, x, y = training_batch("cnn", False, data_dir)
    every = cores()

    def median_step(count: int) -> float:
        threads.pools().set(count)  # its first 5 steps wake its threads
        return 1e3 * statistics.median(step_seconds(model, workspace, stats, x, y, steps, warmup=5))

    listed = []
    for _ in range(rounds):
        before = placement()
        many, one = median_step(every), median_step(1)
        after = placement()
        listed.append({"at": time.strftime("%H:%M:%S"), "shared cache": [before["shared cache"], after["shared cache"]],
                       "cross ms": [before.get("cross ms"), after.get("cross ms")],
                       f"{every} threads ms": many, "1 thread ms": one, "speed-up": one / many})
    grouped = {}
    for name, shared in (("one shared cache", True), ("separate caches", False)):
        agreed = [r for r in listed if r["shared cache"] == [shared, shared]]
        if agreed:
            many, one = (statistics.median(r[key] for r in agreed) for key in (f"{every} threads ms", "1 thread ms"))
            grouped[name] = {"rounds": len(agreed), f"{every} threads ms": many, "1 thread ms": one,
                             "speed-up": one / many}
    return {"steps_each": steps, "by_placement": grouped, "rounds": listed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.placement_steps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    print_json(compare(args.rounds, args.steps, args.data_dir), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
