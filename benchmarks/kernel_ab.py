"""Kernels' worth in a real training step: the quick CNN's step with the fused kernels against their references.

``python -m benchmarks.kernel_ab KERNEL [KERNEL ...] [--blocks 40] [--steps 25] [--data-dir DIR]``: one process
builds the quick CNN (``benchmarks.cnn.QUICK_RUN``, batch 64) and times training steps in blocks of ``--steps``,
alternating between the CPU kernel set's ``KERNEL``s and the reference's (the other order every second block, after
3 untimed steps each), so both meet the same drift of a shared machine. Prints the median step of each and their
ratio, with the thread setting (``XPNET_THREADS`` pins it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from xpnet.kernels.registry import kernels
from xpnet.kernels.sets import ReferenceKernels

from benchmarks.threads import step_seconds, training_batch
from xpnet import threads


def compare(names: list[str], blocks: int, steps: int, data_dir: str) -> dict[str, Any]:
    """Median milliseconds of a quick-CNN training step with the fused kernels ``names`` and with their references."""
    backend, model, workspace, stats, x, y = training_batch("cnn", False, data_dir)
    versions = {"fused": {name: getattr(type(backend.kernels), name) for name in names},
                "reference": {name: getattr(ReferenceKernels, name) for name in names}}
    seconds: dict[str, list[float]] = {version: [] for version in versions}
    for block in range(blocks):
        for version in versions if block % 2 == 0 else reversed(versions):
            for name, function in versions[version].items():
                setattr(backend.kernels, name, function)
            seconds[version] += step_seconds(model, workspace, stats, x, y, steps, warmup=3)
    ms = {name: 1e3 * statistics.median(values) for name, values in seconds.items()}
    return {"kernels": names, "threads": threads.describe(), "steps_each": blocks * steps,
            "fused_ms": ms["fused"], "reference_ms": ms["reference"], "fused_over_reference": ms["fused"] / ms[
                "reference"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernel_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("kernels", nargs="+", choices=sorted(kernels()))
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.kernels, args.blocks, args.steps, args.data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
