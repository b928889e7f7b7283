"""Interleaved A/B of whole-epoch training time between two xpnet checkouts (e.g. before and after a redesign).

``python -m benchmarks.epoch_ab PYTHON_A PYTHON_B [--pairs 5] [--data-dir DIR] [--out FILE]``: each interpreter
must import the xpnet under test (its checkout's virtual environment). For every pair, A then B (then B then A on
the next pair, so neither always runs second) each start a fresh process that loads MNIST, compiles its kernels on a
few batches, and times one epoch of each model in that process (``--child`` mode, which prints JSON). Only the
public API is used (``xpnet.load_mnist``, ``xpnet.mlp``, ``xpnet.cnn``, ``fit``), so any two versions compare.
The report is the median of each model's epoch seconds and the median of the pairwise B/A ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import print_json

MODELS = ("mlp", "cnn")
MLP_SIZES = [784, 256, 128, 10]
"""The peers section's MLP: ReLU, softmax, Adam 1e-3, batch 128."""
CNN_BATCH = 64
"""The quick CNN of the cnn section: 3x3 convs of 8 and 32 filters, 2x2 pools, 128 dense, Adam 5e-3, batch 64."""


def _build(name: str) -> tuple[Any, int]:
    """The model and its batch size; the CNN as the library's own builder makes it (``xpnet.cnn``), so each
    checkout trains the network its users get (since Conv2D's ``max_pool``, one layer per conv + pool stage)."""
    import xpnet

    if name == "mlp":
        return xpnet.mlp(MLP_SIZES, activation="relu", output_activation="softmax", optimizer="adam", lr=1e-3,
                         device="cpu", seed=0), 128
    return xpnet.cnn((28, 28, 1), 10, filters=(8, 32), dense=128, optimizer="adam", lr=5e-3, device="cpu",
                     seed=0), CNN_BATCH


def child(data_dir: str) -> dict[str, float]:
    """Seconds for one epoch of each model, after a compile-and-warm-up fit on a few batches."""
    import numpy as np

    import xpnet

    data = xpnet.load_mnist(data_dir)
    x = (data.x_train / 255).astype(np.float32)
    y = data.y_train
    seconds = {}
    for name in MODELS:
        model, batch = _build(name)
        model.fit(x[: 8 * batch], y[: 8 * batch], epochs=1, batch_size=batch, verbose=0)
        started = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        seconds[name] = time.perf_counter() - started
    return seconds


def _run(python: str, data_dir: str) -> dict[str, float]:
    done = subprocess.run([python, "-m", "benchmarks.epoch_ab", "--child", "--data-dir", data_dir],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(python_a: str, python_b: str, pairs: int, data_dir: str) -> dict[str, Any]:
    """Median epoch seconds of A and B per model, and the median of the pairwise B/A ratios."""
    samples: dict[str, dict[str, list[float]]] = {"a": {m: [] for m in MODELS}, "b": {m: [] for m in MODELS}}
    for pair in range(pairs):
        order = [("a", python_a), ("b", python_b)]
        for side, python in order if pair % 2 == 0 else order[::-1]:
            for name, value in _run(python, data_dir).items():
                samples[side][name].append(value)
        print(f"pair {pair + 1}/{pairs}: " + ", ".join(
            f"{m} A {samples['a'][m][-1]:.2f} s B {samples['b'][m][-1]:.2f} s" for m in MODELS), file=sys.stderr)
    return {
        name: {
            "a_median_s": statistics.median(samples["a"][name]),
            "b_median_s": statistics.median(samples["b"][name]),
            "b_over_a_median": statistics.median(b / a for a, b in zip(samples["a"][name], samples["b"][name],
                                                                        strict=True)),
            "a_s": samples["a"][name],
            "b_s": samples["b"][name],
        }
        for name in MODELS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.epoch_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("python_a", nargs="?", help="interpreter of checkout A (the baseline)")
    parser.add_argument("python_b", nargs="?", help="interpreter of checkout B (the change)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.data_dir)))
        return 0
    if not (args.python_a and args.python_b):
        parser.error("give the two interpreters to compare")
    print_json(compare(args.python_a, args.python_b, args.pairs, args.data_dir), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
