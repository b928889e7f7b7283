"""The gpu section's checks: the ``gpu``-marked tests under ``XPNET_REQUIRE_GPU=1``, and training on the GPU.

Each part fills ``result`` as it goes, so that what it measured survives when it runs out of time.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from benchmarks import cnn, end_to_end
from benchmarks.config import REPO_ROOT
from benchmarks.gpu import GpuRun
from benchmarks.timing import log
from xpnet.tasks import TASK_DEFAULTS, build_model

TEST_SELECTION = "gpu and not slow"
TEST_MARGIN_S = 5
"""The test run's own timeout is this much under the part's budget, so that its output is still read."""
MLP_TARGET, CNN_TARGET = 0.98, 0.99
TRAINING_SHARES = {"mlp": 0.3, "cnn": 0.45}
"""Share of the training part's budget after which each run stops at the end of its epoch (fruits: the rest)."""
LISTED_FAILURES = 20
OUTPUT_TAIL = 1500
"""Characters of the test run's output kept in the results."""


def junit_counts(path: Path) -> dict[str, Any]:
    """Passed, failed, errors and skipped from a JUnit XML report, and the first failures with their messages."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        kind = {"failure": "failed", "error": "errors", "skipped": "skipped"}.get(
            outcome.tag if outcome is not None else "", "passed")
        counts[kind] += 1
        if kind in ("failed", "errors") and len(failures) < LISTED_FAILURES:
            failures.append({"test": name, "message": (outcome.get("message") or "")[:300]})
    return {**counts, "failures": failures}


def progress_counts(output: str) -> dict[str, int]:
    """Passed, failed, errors and skipped from ``pytest -q``'s progress lines ("..F.s  [ 40%]"): what a run that
    was stopped before writing its report had done."""
    marks = "".join(line.split("[")[0].strip() for line in output.splitlines()
                    if re.fullmatch(r"[.FEsxX]+\s*(\[\s*\d+%\])?", line.strip()))
    return {"passed": marks.count("."), "failed": marks.count("F"), "errors": marks.count("E"),
            "skipped": marks.count("s")}


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def collected_count(output: str) -> int | None:
    """The number of tests ``pytest --collect-only -q`` selected ("3/40 tests collected (37 deselected)")."""
    found = re.search(r"(\d+)(?:/\d+)? tests? collected", output)
    return int(found.group(1)) if found else None


def test_command(report: Path, collect_only: bool, paths: list[str]) -> list[str]:
    """pytest on the GPU tests (``paths``: all of tests/ when empty), writing a JUnit report."""
    return [sys.executable, "-m", "pytest", "-m", TEST_SELECTION, "-q", "-p", "no:cacheprovider",
            f"--junitxml={report}", *(["--collect-only"] if collect_only else []), *(paths or ["tests"])]


def tests(run: GpuRun, result: dict[str, Any], paths: list[str] | None = None) -> None:
    """The ``gpu``-marked tests with ``XPNET_REQUIRE_GPU=1`` (a skip counts as a failure), bounded in time; in a
    rehearsal, only collected (they would all fail without a GPU)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        command = test_command(report, run.rehearse, paths or [])
        env = {**os.environ, "XPNET_SHARED_DATA": str(run.config.data_dir), "XPNET_DATA": str(Path(scratch) / "cache"),
               "PYTHONUNBUFFERED": "1", **({} if run.rehearse else {"XPNET_REQUIRE_GPU": "1"})}
        result["command"] = ("XPNET_REQUIRE_GPU=1 " * (not run.rehearse) + "python " + shlex.join(command[1:])
                             ).replace(str(report), "JUNIT.xml")
        timeout = max(1.0, run.budget - TEST_MARGIN_S)
        try:
            done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout)
            result |= {**progress_counts(output), "output_tail": output[-OUTPUT_TAIL:]}
            raise TimeoutError(f"the GPU tests ran past {timeout:.0f} s (counts: those finished by then)") from exc
        result["exit_status"] = done.returncode
        result["output_tail"] = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        if run.rehearse:
            result["collected"] = collected_count(done.stdout)
            result["not_run"] = "rehearsal: collected only; with XPNET_REQUIRE_GPU=1 they need a GPU"
            if done.returncode != 0:
                raise RuntimeError(f"collecting the GPU tests failed (pytest exit {done.returncode})")
            return
        if not report.is_file():
            raise RuntimeError(f"pytest wrote no report (exit {done.returncode})")
        result |= junit_counts(report)
    log(f"gpu: tests {', '.join(f'{k} {v}' for k, v in result.items() if isinstance(v, int))}")
    if result["failed"] or result["errors"] or result["passed"] == 0:
        raise AssertionError(f"{result['failed']} failed, {result['errors']} errors, {result['passed']} passed")


def training(run: GpuRun, result: dict[str, Any]) -> None:
    """MNIST's MLP to 98% and CNN to 99% test accuracy (CLI settings, seed 0), each stopped once its share of
    the budget is spent; then `xpnet train fruits`'s classifier. In a rehearsal: 1 epoch on 1,024 images."""
    task = run.mnist()
    result["mnist"] = []
    runs = {"mlp": (dict(TASK_DEFAULTS["mnist"]["mlp"]), MLP_TARGET), "cnn": (dict(cnn.SETTINGS), CNN_TARGET)}
    for kind, (settings, target) in runs.items():
        if run.rehearse:
            settings["epochs"] = 1
        model = build_model("mnist", task, settings, run.config.backend(run.device))
        outcome = end_to_end.time_to_accuracy(model, task, settings, target,
                                              max_seconds=TRAINING_SHARES[kind] * run.budget)
        result["mnist"].append({"model": kind, "device": run.device, "target": target, **outcome,
                                "final_test_accuracy": outcome["test_accuracy"][-1]})
        log(f"gpu: mnist {kind}: {result['mnist'][-1]}")
    result["fruits"] = end_to_end.fruit_rows(run.on(repeats=1))
