"""The benchmark suite: its helpers, and a --quick run end to end (as CI runs it, so the harness never rots)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from xpnet.kernels import KERNEL_FUNCTIONS

from benchmarks import machine, report, training_step
from benchmarks.__main__ import earlier_sections
from benchmarks.kernels import CASES
from xpnet.cli import main as xpnet_main

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"kernels", "training_step", "end_to_end", "peers", "cnn", "data_sources"}


def test_crossover_is_the_smallest_batch_where_the_gpu_wins() -> None:
    rows = [{"width": 64, "batch": 32, "speedup": 0.5}, {"width": 64, "batch": 128, "speedup": 1.5},
            {"width": 64, "batch": 512, "speedup": 3.0}, {"width": 256, "batch": 32, "speedup": 0.9},
            {"width": 1024, "batch": 32}]
    assert training_step.crossovers(rows, [64, 256, 1024]) == {64: 128, 256: None, 1024: None}


def test_machine_slug_names_hardware_only() -> None:
    description = {"cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 16, "gpu": {"gpu": "NVIDIA H100 80GB HBM3"}}
    assert machine.slug(description) == "amd-epyc-7b13-64-core-processor-16c-nvidia-h100-80gb-hbm3"
    assert machine.slug({**description, "gpu": {"absent": "no CUDA device found"}}) == (
        "amd-epyc-7b13-64-core-processor-16c")


def test_markdown_table_takes_columns_from_all_rows() -> None:
    table = report.markdown_table([{"a": 1, "b": 0.123456}, {"a": 2, "c": None}])
    assert table.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1 | 0.1235 | — |", "| 2 | — | — |"]


def test_every_kernel_has_a_case() -> None:
    assert set(KERNEL_FUNCTIONS) <= {kernel for kernel, _ in CASES.values()}


def test_xpnet_bench_hands_its_options_to_the_suite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        xpnet_main(["bench", "--sections", "nonsense"])
    assert exit_info.value.code == 2
    assert "unknown section(s) nonsense" in capsys.readouterr().err


def test_earlier_sections_are_kept_only_from_the_same_mode_and_machine(tmp_path: Path) -> None:
    earlier = {"mode": "full", "machine_slug": "m", "command": "python -m benchmarks", "started": "then",
               "sections": {"peers": {"rows": [1]}, "retired": {"rows": [2]}}}
    (tmp_path / "results.json").write_text(json.dumps(earlier))
    kept = earlier_sections(tmp_path, "full", "m")
    assert kept == {"peers": {"rows": [1], "command": "python -m benchmarks", "started": "then"}}
    assert earlier_sections(tmp_path, "quick", "m") == {} and earlier_sections(tmp_path, "full", "other") == {}
    (tmp_path / "results.json").write_text("{not json")
    assert earlier_sections(tmp_path, "full", "m") == {}
    assert earlier_sections(tmp_path / "missing", "full", "m") == {}


def _positive(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_quick_run_writes_sane_results(tmp_path: Path, shared_data: Path) -> None:
    env = {**os.environ, "XPNET_DATA": str(tmp_path / "cache")}  # the fruit feature cache goes here
    command = [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path), "--machine", "ci",
               "--data-dir", str(shared_data)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    folder = tmp_path / "ci" / "quick"

    results = json.loads((folder / "results.json").read_text())
    assert results["mode"] == "quick" and results["machine_slug"] == "ci"
    assert any("quick mode: medians of 3" in note for note in results["notes"])
    described = results["machine"]
    assert described["cores"] >= 1 and described["cpu"]
    assert described["versions"]["numpy"] and described["versions"]["numba"]
    sections = results["sections"]
    assert set(sections) == SECTIONS
    assert not [name for name, section in sections.items() if "error" in section]

    kernel_rows = sections["kernels"]["rows"]
    assert {row["kernel"] for row in kernel_rows} == set(CASES)
    for row in kernel_rows:
        assert all(_positive(row[key]) for key in ("fused_s", "reference_s", "fused_gb_per_s", "speedup"))
    assert _positive(sections["kernels"]["copy_bandwidth"]["cpu"]["gb_per_s"])

    steps = sections["training_step"]["rows"]
    assert steps and all(_positive(row["cpu_ms"]) for row in steps)

    peers = {row["implementation"]: row for row in sections["peers"]["rows"]}
    assert _positive(peers["xpnet fused (cpu)"]["s_per_epoch"])
    assert _positive(peers["xpnet reference (cpu)"]["s_per_epoch"])
    assert (peers["torch (cpu)"]["s_per_epoch"] is None) == (sections["peers"]["torch"] is None)

    mnist = sections["end_to_end"]["mnist"][0]
    assert 0 < mnist["test_accuracy"][-1] <= 1 and _positive(mnist["epoch_s_median"])
    fruit = sections["end_to_end"]["fruits"][0]
    assert _positive(fruit["histogram_images_per_s"]) and _positive(fruit["train_s"])

    cnn = sections["cnn"]
    assert _positive(cnn["epochs"][0]["xpnet_s_per_epoch"]) and 0 < cnn["accuracy"]["final_test_accuracy"] <= 1
    assert all(_positive(row["gflops"]) and _positive(row["sgemm_gflops"]) for row in cnn["convolutions"])
    assert [row["matmuls"] for row in cnn["convolutions"]] == [2, 3]  # no input gradient for the first

    data = sections["data_sources"]
    assert data["csv"][0]["rows"] == 1000 and data["csv"][0]["columns"] == 785
    assert _positive(data["csv"][0]["scan_rows_per_s"]) and _positive(data["csv"][0]["streamed_rows_per_s"])
    assert {row["size"] for row in data["images"]} >= {"64x64 rgb", "64x64 grey"}
    assert all(_positive(row["images_per_s"]) for row in data["images"])
    assert all(_positive(row["resident_s"]) and _positive(row["streamed_s"]) for row in data["epochs"])

    markdown = (folder / "results.md").read_text()
    assert all(f"## {name}" in markdown for name in SECTIONS) and "| device | kernel |" in markdown
    for chart in ("kernels.png", "training_step.png"):
        data = (folder / chart).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000

    # re-measuring one section replaces it and keeps the others as they were
    again = subprocess.run([*command, "--sections", "peers"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    rerun = json.loads((folder / "results.json").read_text())["sections"]
    assert set(rerun) == SECTIONS and rerun["kernels"] == sections["kernels"]
    assert rerun["peers"]["command"].endswith("--sections peers")
