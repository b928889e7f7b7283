"""Time per training step of 784-W-W-10 MLPs (Adam, float32) over widths and batch sizes, CPU against GPU.

The crossover is, per width, the smallest batch at which the GPU's step is faster: below it the CPU wins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.config import Config
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet.builders import mlp

INPUTS, OUTPUTS = 784, 10
FULL_GRID = ([64, 256, 1024, 4096], [32, 128, 512, 2048, 4096])
QUICK_GRID = ([64, 256], [32, 256])
CPU_FLOP_CAP = 5e10
"""Full mode skips CPU steps estimated above this many FLOPs (~1-2 s each on 2 cores) to bound the run time."""
MIN_SAMPLE_SECONDS = {True: 0.005, False: 0.05}


def step_flops(width: int, batch: int) -> float:
    """Forward + backward matmul FLOPs of one step: 6 per weight per sample."""
    weights = INPUTS * width + width * width + width * OUTPUTS
    return 6.0 * batch * weights


def step_candidate(config: Config, device: str, width: int, batch: int) -> Candidate:
    """One train_step of a fresh model on random data of ``batch`` rows, resident on ``device``."""
    backend = config.backend(device)
    model = mlp([INPUTS, width, width, OUTPUTS], optimizer="adam", backend=backend)
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.random((batch, INPUTS), dtype=np.float32))
    y = backend.asarray(np.eye(OUTPUTS, dtype=np.float32)[rng.integers(0, OUTPUTS, batch)])
    workspace = model.workspace(batch, backward=True)
    stats = backend.zeros(2, dtype=np.float64)
    return Candidate(lambda: model.train_step(x, y, workspace, stats), backend.synchronize)


def crossovers(rows: list[dict[str, Any]], widths: list[int]) -> dict[int, int | None]:
    """Per width, the smallest batch with GPU faster than CPU (None: the CPU won, or was not run, throughout)."""
    return {
        width: next((r["batch"] for r in rows if r["width"] == width and (r.get("speedup") or 0) > 1), None)
        for width in widths
    }


def run(config: Config) -> dict[str, Any]:
    """Step times for every width x batch on every device, devices interleaved."""
    widths, batches = QUICK_GRID if config.quick else FULL_GRID
    rows, skipped = [], []
    for width in widths:
        for batch in batches:
            devices = [d for d in config.devices
                       if d == "gpu" or config.quick or step_flops(width, batch) <= CPU_FLOP_CAP]
            if "cpu" not in devices:
                skipped.append(f"{width}x{batch}")
            if not devices:
                continue
            candidates = {device: step_candidate(config, device, width, batch) for device in devices}
            for candidate in candidates.values():
                candidate.calibrate(MIN_SAMPLE_SECONDS[config.quick])
            times = {d: Stats.of(s).median for d, s in interleave(candidates, config.repeats).items()}
            row: dict[str, Any] = {"width": width, "batch": batch, "gflop_per_step": step_flops(width, batch) / 1e9}
            for device, seconds in times.items():
                row |= {f"{device}_ms": seconds * 1e3, f"{device}_samples_per_s": batch / seconds}
            if len(times) == 2:
                row["speedup"] = times["cpu"] / times["gpu"]
            rows.append(row)
            log("training_step: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
    notes = []
    if skipped:
        notes.append(f"CPU skipped for width x batch {', '.join(skipped)}: estimated over {CPU_FLOP_CAP:.0e} "
                     "FLOPs per step, too slow for this run's time budget")
    if "gpu" in config.devices:
        cross = crossovers(rows, widths)
        notes.append("crossover (smallest batch where the GPU is faster; the CPU wins below it): " + ", ".join(
            f"width {w}: {'batch ' + str(b) if b else 'none measured'}" for w, b in cross.items()))
    else:
        cross = {}
        notes.append(f"GPU absent ({config.gpu_absent}): CPU times only, no speedup or crossover")
    return {"rows": rows, "crossover": cross, "notes": notes}
