"""One kernel's worth in a real training step: the quick CNN's step with the fused kernel against its reference.

``python -m benchmarks.kernel_ab KERNEL [--blocks 40] [--steps 25] [--data-dir DIR]``: one process builds the quick
CNN (``benchmarks.cnn.QUICK_RUN``, batch 64) and times training steps in blocks of ``--steps``, alternating between
the CPU kernel set's ``KERNEL`` and the reference's (the other order every second block, after 3 untimed steps
each), so both meet the same drift of a shared machine. Prints the median step of each and their ratio, with the
thread setting (``XPNET_THREADS`` pins it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from xpnet.kernels.registry import kernels
from xpnet.kernels.sets import ReferenceKernels

from benchmarks.threads import step_seconds, training_batch
from xpnet import threads


def compare(kernel: str, blocks: int, steps: int, data_dir: str) -> dict[str, float | str]:
    """Median milliseconds of a quick-CNN training step with the fused ``kernel`` and with its reference."""
    backend, model, workspace, stats, x, y = training_batch("cnn", False, data_dir)
    versions = {"fused": getattr(type(backend.kernels), kernel), "reference": getattr(ReferenceKernels, kernel)}
    seconds: dict[str, list[float]] = {name: [] for name in versions}
    for block in range(blocks):
        for name in versions if block % 2 == 0 else reversed(versions):
            setattr(backend.kernels, kernel, versions[name])
            seconds[name] += step_seconds(model, workspace, stats, x, y, steps, warmup=3)
    ms = {name: 1e3 * statistics.median(values) for name, values in seconds.items()}
    return {"kernel": kernel, "threads": threads.describe(), "steps_each": blocks * steps,
            "fused_ms": ms["fused"], "reference_ms": ms["reference"], "fused_over_reference": ms["fused"] / ms[
                "reference"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernel_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel", choices=sorted(kernels()))
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.kernel, args.blocks, args.steps, args.data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
