"""Whole epochs of a user's program that imports NumPy before xpnet, against one that imports xpnet first.

``python -m benchmarks.import_order [--rounds 3] [--data-dir DIR] [--out FILE]``: every round starts one fresh
process per arrangement, in turn, and each times one MNIST epoch of the MLP and of the quick CNN after a warm-up
(``benchmarks.epoch_ab``'s child, public API only). The arrangements:

- ``xpnet first``: ``import xpnet`` sets OpenBLAS's idle spin before NumPy loads OpenBLAS;
- ``numpy first``: most scripts' order; ``import xpnet`` then has OpenBLAS re-read it and restart its workers;
- ``numpy first, default spin``: the same with ``OPENBLAS_THREAD_TIMEOUT=28``, OpenBLAS's own default, which the
  user's setting keeps: what NumPy-first programs ran with before xpnet restarted the workers.

The report gives each arrangement's median seconds per model and the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.epoch_ab import MODELS
from benchmarks.machine import cpu_model
from benchmarks.report import print_json
from benchmarks.timing import load_average
from xpnet.threads import BLAS_IDLE_ENV

CHILD = """
import {first}
import json, sys
from benchmarks.epoch_ab import child
from xpnet import threads
print(json.dumps({{**child(sys.argv[1]), "blas_idle": threads.blas_idle()}}))
"""

ARRANGEMENTS = {
    "xpnet first": ("xpnet", None),
    "numpy first": ("numpy", None),
    "numpy first, default spin": ("numpy", "28"),
}
"""Name: (the module imported first, the OPENBLAS_THREAD_TIMEOUT the user set or None)."""


def _run(first: str, spin: str | None, data_dir: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != BLAS_IDLE_ENV} | ({BLAS_IDLE_ENV: spin} if spin else {})
    done = subprocess.run([sys.executable, "-c", CHILD.format(first=first), data_dir], capture_output=True,
                          text=True, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(rounds: int, data_dir: str) -> dict[str, Any]:
    """Median epoch seconds of each arrangement per model, every sample, and what each process reported."""
    load_average_at_start = load_average()
    samples: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MODELS} for name in ARRANGEMENTS}
    said: dict[str, str] = {}
    for round_ in range(rounds):
        for name, (first, spin) in ARRANGEMENTS.items():
            result = _run(first, spin, data_dir)
            said[name] = result["blas_idle"]
            for model in MODELS:
                samples[name][model].append(result[model])
        print(f"round {round_ + 1}/{rounds}: " + "; ".join(
            f"{name} " + ", ".join(f"{m} {samples[name][m][-1]:.2f} s" for m in MODELS) for name in ARRANGEMENTS),
            file=sys.stderr)
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_at_start": load_average_at_start,
            "rounds": rounds,
            "arrangements": {name: {"blas_idle": said[name],
                                    **{f"{m}_median_s": statistics.median(samples[name][m]) for m in MODELS},
                                    **{f"{m}_s": samples[name][m] for m in MODELS}}
                             for name in ARRANGEMENTS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.import_order", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here too")
    args = parser.parse_args(argv)
    print_json(compare(args.rounds, args.data_dir), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
