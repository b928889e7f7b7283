"""The thread governor replayed on recorded step times: ``python -m benchmarks.governor_replay --data-dir DIR``.

A governed epoch is one sample of a noisy process: whether a probe's short window falls on a burst of waits decides
the next seconds, so single epochs (the ``threads`` section's cells) move by 1.0-1.8x of the best fixed count from run
to run beside the same load. This tool gives the distribution instead:

- ``record``: under each load of the ``threads`` section but the second copy of the training (whose load changes
  with the count measured), the per-step seconds of the quick CNN (or the MLP) at 1 thread and at every core, each
  count in its own process beside a fresh load, ``--rounds`` times alternating (``threads.measure``; one batch
  repeated, ``threads.step_seconds``).
- ``replay``: ``--trials`` governed epochs per load from random starting times. At every step the governor's count
  takes the step its own trace ran at that wall time (offset at random per count, the trace wrapping around), so
  waits that come in bursts stay where the load put them in time, whatever count meets them. What each count's
  kernels cost to load on its first step is left out (the governor forgives it).

Printed and written (``--out``) per load: governed / best fixed count in median, 90th percentile and maximum, the
share of steps at each count, and each count's mean step. ``--traces FILE`` replays the traces of a file that
``--out`` wrote instead of recording new ones: a change to the governor is compared on the very steps its
predecessor met (``benchmarks/results/*/governor_replay_*.json`` keep them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import threads
from benchmarks.config import make_config
from benchmarks.timing import load_average, log
from xpnet.fileio import atomic_write
from xpnet.governor import ThreadGovernor

SKIPPED = "a second copy of the same training"
"""Its load runs at the measured count's setting, so the traces of two counts would not share one load."""
TRACE_STEPS = {"mlp": 1500, "cnn": 938}
"""Steps per trace: about one epoch of each (the quick CNN's 938 batches of 64)."""


def trace_steps(workload: str, quick: bool) -> int:
    """Steps per trace, and per replayed run: a tenth in quick mode."""
    return TRACE_STEPS[workload] // (10 if quick else 1)


def trace_worker(workload: str, mode: str, data_dir: str, steps: str) -> None:
    """Print as JSON the seconds of ``steps`` training steps at ``$XPNET_THREADS`` (after 20 untimed ones)."""
    _, model, workspace, stats, x, y = threads.training_batch(workload, mode == "quick", data_dir)
    print(json.dumps({"steps": threads.step_seconds(model, workspace, stats, x, y, int(steps), warmup=20)}),
          flush=True)


def record(data_dir: Path, workload: str, rounds: int, quick: bool = False) -> dict[str, dict[int, list[float]]]:
    """Load name -> thread count -> its step seconds over ``rounds`` traces (in the order they ran)."""
    config = make_config(quick, data_dir, "cpu")
    command = [sys.executable, "-m", "benchmarks.governor_replay", "trace", workload, "quick" if quick else "full",
               str(data_dir), str(trace_steps(workload, quick))]
    counts = sorted({1, threads.cores()})
    traces: dict[str, dict[int, list[float]]] = {}
    for condition, loads in threads.conditions(config, threads.torch_version() is not None).items():
        if condition == SKIPPED:
            continue
        traces[condition] = {count: [] for count in counts}
        for _ in range(rounds):
            for count in counts:
                result = threads.measure(command, str(count), loads(command), threads.SETTLE_SECONDS[quick])
                traces[condition][count] += result["steps"]
        log(f"governor replay: recorded {condition}: " + ", ".join(
            f"{count} threads {1e3 * statistics.fmean(t):.2f} ms" for count, t in traces[condition].items()))
    return traces


def governed_seconds(traces: dict[int, np.ndarray], ends: dict[int, np.ndarray], steps: int, rng: np.random.Generator,
                     governor: Callable[[int], ThreadGovernor]) -> tuple[float, dict[int, int]]:
    """One governed run of ``steps`` steps on ``traces`` (count -> step seconds; ``ends``: their running sums, when
    each step ended) from a random start: its seconds and how many steps ran at each count."""
    offsets = {count: rng.uniform(0.0, float(e[-1])) for count, e in ends.items()}
    gov = governor(max(traces))
    clock, at = 0.0, dict.fromkeys(traces, 0)
    for _ in range(steps):
        count = gov.count
        index = int(np.searchsorted(ends[count], (clock + offsets[count]) % ends[count][-1]))
        seconds = float(traces[count][min(index, len(traces[count]) - 1)])
        clock += seconds
        at[count] += 1
        gov.step_done(seconds)
    return clock, at


def replay(traces: dict[int, list[float]], trials: int, steps: int, seed: int = 0,
           governor: Callable[[int], ThreadGovernor] = lambda maximum: ThreadGovernor(maximum, lambda count: None)
           ) -> dict[str, Any]:
    """``trials`` governed runs of ``steps`` steps: governed / best fixed count (each fixed count at its trace's
    mean) in median, 90th percentile and maximum, the share of steps at each count, each count's mean step."""
    arrays = {count: np.asarray(t) for count, t in traces.items()}
    best = min(float(t.mean()) for t in arrays.values()) * steps
    ends = {count: np.cumsum(t) for count, t in arrays.items()}
    rng = np.random.default_rng(seed)
    runs = [governed_seconds(arrays, ends, steps, rng, governor) for _ in range(trials)]
    ratios = np.array([seconds for seconds, _ in runs]) / best
    return {"governed / best fixed": {"median": float(np.median(ratios)), "p90": float(np.percentile(ratios, 90)),
                                      "max": float(ratios.max())},
            "share of steps": {str(count): sum(at[count] for _, at in runs) / (steps * trials) for count in arrays},
            "mean step ms": {str(count): 1e3 * float(t.mean()) for count, t in arrays.items()}}


TRACES = "traces (step seconds)"
"""The key of the traces in a file that ``--out`` wrote: load name -> thread count -> step seconds."""


def saved_traces(path: Path) -> tuple[str, dict[str, dict[int, list[float]]], str]:
    """The workload, the traces and when they were recorded, from a file that ``--out`` wrote; ValueError naming
    the file if it is not one."""
    try:
        saved = json.loads(path.read_text())
        traces = {condition: {int(count): [float(s) for s in steps] for count, steps in by_count.items()}
                  for condition, by_count in saved[TRACES].items()}
        workload, recorded = saved["workload"], str(saved.get("traces recorded", saved.get("started")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a trace file written by --out ({type(error).__name__}: {error})") from None
    if workload not in threads.WORKLOADS or not traces or not all(
            by_count and all(by_count.values()) for by_count in traces.values()):
        raise ValueError(f"{path}: not a trace file written by --out (workload {workload!r}, or a load without "
                         "steps)")
    return workload, traces, recorded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="the folder holding MNIST (../shared/data), to record traces")
    parser.add_argument("--traces", type=Path, help="replay the traces of this file (written by --out) instead")
    parser.add_argument("--workload", choices=threads.WORKLOADS, default="cnn")
    parser.add_argument("--rounds", type=int, default=2, help="traces per count and load (default 2)")
    parser.add_argument("--trials", type=int, default=300, help="governed runs replayed per load (default 300)")
    parser.add_argument("--quick", action="store_true", help="short traces (a check of the tool, not a figure)")
    parser.add_argument("--out", type=Path, help="also write the traces and the results here as JSON")
    args = parser.parse_args(argv)
    if (args.data_dir is None) == (args.traces is None):
        parser.error("give --data-dir to record traces, or --traces FILE to replay saved ones")
    started, load = datetime.now(timezone.utc).isoformat(timespec="seconds"), load_average()
    log(f"governor replay: load average {load}")
    if args.traces:
        try:
            workload, traces, recorded = saved_traces(args.traces)
        except ValueError as error:
            parser.error(str(error))
    else:
        workload, traces = args.workload, record(args.data_dir, args.workload, args.rounds, args.quick)
        recorded = started
    results = {}
    for condition, by_count in traces.items():
        results[condition] = replay(by_count, args.trials, trace_steps(workload, args.quick))
        ratio = results[condition]["governed / best fixed"]
        print(f"{condition}: governed / best fixed median {ratio['median']:.3f}, p90 {ratio['p90']:.3f}, max "
              f"{ratio['max']:.3f}; share of steps {results[condition]['share of steps']}; mean step ms "
              f"{ {k: round(v, 2) for k, v in results[condition]['mean step ms'].items()} }", flush=True)
    if args.out:
        with atomic_write(args.out, "w") as handle:
            json.dump({"command": " ".join(["python -m benchmarks.governor_replay",
                                            *(sys.argv[1:] if argv is None else argv)]),
                       "started": started, "load average at start": load, "workload": workload,
                       "traces recorded": recorded, "results": results, TRACES: {
                           condition: {str(count): [round(s, 6) for s in t] for count, t in by_count.items()}
                           for condition, by_count in traces.items()}}, handle)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "trace":
        trace_worker(*sys.argv[2:])
    else:
        main()
