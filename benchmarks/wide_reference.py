"""The 2-core CPU's time for one 784-4096-4096-10 training step at batch 1024 (Adam, float32), committed so that
the gpu section, run elsewhere, compares the GPU's step with it.

``python -m benchmarks.wide_reference [STEPS]`` measures it on this machine (median of STEPS steps after one
warm-up) and writes ``benchmarks/results/<CPU_MACHINE>/wide_mlp_cpu.json``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

from benchmarks import training_step
from benchmarks.config import REPO_ROOT, make_config
from benchmarks.machine import cpu_model
from benchmarks.timing import Stats, interleave, load_average, log
from xpnet.fileio import atomic_write

WIDTH, BATCH = 4096, 1024
CPU_MACHINE = "amd-epyc-2c"
"""The results folder of the 2-core CPU machine the README's CPU figures come from."""
PATH = REPO_ROOT / "benchmarks" / "results" / CPU_MACHINE / "wide_mlp_cpu.json"
DEFAULT_STEPS = 3


def measure(steps: int) -> dict[str, Any]:
    """Milliseconds per step on this machine's CPU, with the load average around the measurement."""
    config = make_config(False, None, "cpu")
    before = load_average()
    step = training_step.step_candidate(config, "cpu", WIDTH, BATCH)
    stats = Stats.of(interleave({"step": step}, steps, 1)["step"])
    return {"width": WIDTH, "batch": BATCH, "ms_per_step": stats.median * 1e3, "min_ms": stats.min * 1e3,
            "steps": steps, "cpu": cpu_model(), "load_average": [before, load_average()],
            "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": f"python -m benchmarks.wide_reference {steps}"}


def read() -> dict[str, Any]:
    """The committed figure; a missing file is an error that says how to make it."""
    if not PATH.is_file():
        raise FileNotFoundError(f"{PATH} is missing: run python -m benchmarks.wide_reference on the 2-core CPU")
    return json.loads(PATH.read_text())


def main(argv: list[str]) -> None:
    figure = measure(int(argv[0]) if argv else DEFAULT_STEPS)
    with atomic_write(PATH, "w") as handle:
        json.dump(figure, handle, indent=1)
    log(f"wrote {PATH}: {figure}")


if __name__ == "__main__":
    main(sys.argv[1:])
