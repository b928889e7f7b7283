"""``python -m benchmarks [--quick] [--sections ...] [--rehearse] [--machine SLUG] [--data-dir DIR] [--out DIR]``.

Runs the sections in order, writing results after each one under ``<out>/<machine>/`` (``<machine>/quick/``
for --quick, ``<machine>/rehearsal/`` for --rehearse). A section that fails is recorded with its error and the
exit status is 1. The ``gpu`` section (not in the default list) is the one prepared run on a CUDA machine
(``benchmarks/gpu.py``): without a usable GPU it ends at once with one line (exit 2); ``--rehearse`` runs it on
tiny sizes under Numba's CUDA simulator and the CPU instead. Sections not run keep their earlier results from
that folder (each section records the command and time that produced it), so one
section can be re-measured without discarding the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import (
    cnn,
    data_sources,
    distributed,
    end_to_end,
    gpu,
    kernels,
    machine,
    peers,
    report,
    threads,
    training_step,
)
from benchmarks.config import REPO_ROOT, Config, make_config
from benchmarks.timing import load_average, log
from xpnet.backend import BACKENDS

SECTIONS: dict[str, Callable[[Config], dict[str, Any]]] = {
    "kernels": kernels.run,
    "training_step": training_step.run,
    "end_to_end": end_to_end.run,
    "peers": peers.run,
    "cnn": cnn.run,
    "distributed": distributed.run,
    "data_sources": data_sources.run,
    "gpu": gpu.run,
    "threads": threads.run,
}
DEFAULT_SECTIONS = [name for name in SECTIONS if name != "gpu"]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
INSTALL = "pip install -e '.[bench]'"
"""The extra that installs what the suite needs beyond xpnet's tests: matplotlib (charts) and PyTorch (the peer)."""


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 3 runs per median: checks the harness")
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)} (default: all but gpu)")
    parser.add_argument("--rehearse", action="store_true",
                        help="the gpu section without a GPU: every part on tiny sizes, CUDA kernels simulated")
    parser.add_argument("--device", choices=("auto", "cpu"), default="auto",
                        help="auto: CPU, and the GPU when one is usable (default); cpu: CPU only")
    parser.add_argument("--machine", help="results folder name (default: a slug of CPU model, cores and GPU)")
    parser.add_argument("--data-dir", type=Path,
                        help="folder with mnist/ and fruits-360/ (default: ../shared/data if present, else "
                             "xpnet's data cache)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results root (default {DEFAULT_OUT})")
    return parser


def run_section(name: str, config: Config, command: str) -> dict[str, Any]:
    """One section's results, with the command, start time, wall time and load average around it, or its error."""
    log(f"== {name}")
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    before, started = load_average(), time.perf_counter()
    try:
        section = SECTIONS[name](config)
    except Exception as exc:  # recorded, so that one broken section does not lose the others' results
        traceback.print_exc()
        section = {"error": f"{type(exc).__name__}: {exc}"}
    return {**section, "command": command, "started": stamp, "seconds": round(time.perf_counter() - started, 1),
            "load_average": [before, load_average()]}


def earlier_sections(folder: Path, mode: str, slug: str) -> dict[str, Any]:
    """The sections an earlier run of the same mode on the same machine wrote to ``folder`` (none if unreadable)."""
    try:
        earlier = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(earlier, dict) or earlier.get("mode") != mode or earlier.get("machine_slug") != slug:
        return {}
    sections = earlier.get("sections")
    if not isinstance(sections, dict):
        return {}
    for section in sections.values():  # results written before sections recorded their own command
        if isinstance(section, dict):
            section.setdefault("command", earlier.get("command"))
            section.setdefault("started", earlier.get("started"))
    return {name: section for name, section in sections.items() if name in SECTIONS}


def missing_peer_notes() -> list[str]:
    """A note for each peer implementation that cannot be imported, saying how to install it."""
    if peers.torch_version() is None:
        return [f"PyTorch absent (not importable): no peer numbers; {INSTALL} installs it"]
    return []


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Run the benchmarks; return 0, 1 when a section failed, or 2 when matplotlib (for the charts) is missing."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(names) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.rehearse and names != ["gpu"]:
        parser.error("--rehearse rehearses the gpu section alone; use it with --sections gpu")
    if "gpu" in names and not args.rehearse:
        problem = BACKENDS["gpu"].problem()
        if problem is not None:
            print(f"{prog}: error: the gpu section needs a usable GPU, and there is none: {problem} "
                  "(--rehearse runs it without one)", file=sys.stderr)
            return 2
    try:
        import matplotlib  # noqa: F401 - only checked here, before minutes of timing; the charts import it
    except ImportError:
        print(f"{prog}: error: the charts need matplotlib, which is not installed; {INSTALL}", file=sys.stderr)
        return 2
    config = make_config(args.quick or args.rehearse, args.data_dir, "cpu" if args.rehearse else args.device)
    config.rehearse = args.rehearse
    for note in missing_peer_notes():
        log(note)
        config.notes.append(note)
    description = machine.describe(config)
    slug = args.machine or machine.slug(description)
    mode = "rehearsal" if args.rehearse else "quick" if args.quick else "full"
    folder = args.out / slug / ("" if mode == "full" else mode)
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    results: dict[str, Any] = {
        "machine_slug": slug, "machine": description, "mode": mode, "command": command,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "notes": config.notes,
        "sections": earlier_sections(folder, mode, slug),
    }
    for name in names:
        results["sections"][name] = run_section(name, config, command)
        written = report.write(results, folder)
    log("wrote " + ", ".join(str(path) for path in written))
    return 1 if any("error" in section for section in results["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
