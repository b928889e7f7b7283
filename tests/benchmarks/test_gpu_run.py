"""The gpu section (the one prepared run on a CUDA machine): its refusal without a GPU, its rehearsal, and the
pieces that read its test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

import benchmarks.__main__ as bench
from benchmarks import gpu, gpu_checks, kernels

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_the_section_ends_at_once_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.BACKENDS["gpu"], "problem", classmethod(lambda cls: "no CUDA device found"))
    assert bench.main(["--sections", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("python -m benchmarks: error: the gpu section needs a usable GPU")
    assert "no CUDA device found" in err


def test_the_gpu_section_is_not_in_the_default_run_and_rehearse_needs_it_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "gpu" not in bench.DEFAULT_SECTIONS and set(bench.DEFAULT_SECTIONS) | {"gpu"} == set(bench.SECTIONS)
    with pytest.raises(SystemExit):
        bench.main(["--sections", "gpu,peers", "--rehearse"])
    assert "--rehearse rehearses the gpu section alone" in capsys.readouterr().err


def test_junit_report_and_progress_lines_are_counted(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(textwrap.dedent("""\
        <testsuites><testsuite>
          <testcase classname="tests.a" name="ok"/>
          <testcase classname="tests.a" name="bad"><failure message="assert 1 == 2"/></testcase>
          <testcase classname="tests.b" name="broken"><error message="fixture"/></testcase>
          <testcase classname="tests.b" name="later"><skipped message="why"/></testcase>
        </testsuite></testsuites>"""))
    counts = gpu_checks.junit_counts(report)
    assert {k: counts[k] for k in ("passed", "failed", "errors", "skipped")} == {
        "passed": 1, "failed": 1, "errors": 1, "skipped": 1}
    assert counts["failures"] == [{"test": "tests.a::bad", "message": "assert 1 == 2"},
                                  {"test": "tests.b::broken", "message": "fixture"}]
    progress = "..F.s                 [ 40%]\n.E\nan unrelated line.\n"
    assert gpu_checks.progress_counts(progress) == {"passed": 4, "failed": 1, "errors": 1, "skipped": 1}
    assert gpu_checks.collected_count("3/40 tests collected (37 deselected) in 1.2s") == 3


def _skips_under(require: bool, tmp_path: Path) -> dict[str, str]:
    """Outcome per test of a file with gpu-marked and plain tests that skip, run with the project's conftest."""
    (tmp_path / "test_skips.py").write_text(textwrap.dedent("""\
        import pytest

        @pytest.mark.gpu
        def test_gpu_that_skips():
            pytest.skip("the device is busy")

        def test_plain_that_skips():
            pytest.skip("not a GPU test")
        """))
    report = tmp_path / "junit.xml"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "XPNET_REQUIRE_GPU": "1" if require else "0"}
    subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
                    f"--junitxml={report}", str(tmp_path / "test_skips.py")], cwd=tmp_path, env=env,
                   capture_output=True, text=True, timeout=300)
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = kinds[0] if kinds else "passed"
    return outcomes


def test_require_gpu_turns_a_skipped_gpu_test_into_a_failure(tmp_path: Path) -> None:
    required = _skips_under(True, tmp_path)
    assert required["test_gpu_that_skips"] in ("failure", "error")  # error: skipped at setup (no GPU here)
    assert required["test_plain_that_skips"] == "skipped"
    assert _skips_under(False, tmp_path)["test_gpu_that_skips"] == "skipped"


def test_a_part_that_fails_or_overruns_keeps_what_it_measured() -> None:
    run = gpu.GpuRun(config=None, rehearse=True, budget=0.2)  # type: ignore[arg-type]

    def overruns(_: gpu.GpuRun, result: dict) -> None:
        result["first"] = 1.0
        while True:
            pass

    outcome = gpu.run_part("slow", overruns, run)
    assert outcome["status"] == "error" and "PartTimeout" in outcome["error"] and outcome["first"] == 1.0

    def fails(_: gpu.GpuRun, result: dict) -> None:
        result["rows"] = [1]
        raise ValueError("broken")

    assert gpu.run_part("broken", fails, run) | {"seconds": 0} == {
        "status": "error", "error": "ValueError: broken", "seconds": 0, "budget_s": 0, "rows": [1]}


def test_rehearsal_runs_every_part_and_writes_the_results(tmp_path: Path, shared_data: Path) -> None:
    env = {**os.environ, "XPNET_DATA": str(tmp_path / "cache"), "NUMBA_ENABLE_CUDASIM": "1"}
    command = [sys.executable, "-m", "benchmarks", "--sections", "gpu", "--rehearse", "--out", str(tmp_path),
               "--machine", "ci", "--data-dir", str(shared_data)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    folder = tmp_path / "ci" / "rehearsal"
    results = json.loads((folder / "results.json").read_text())
    assert results["mode"] == "rehearsal"
    section = results["sections"]["gpu"]
    assert section["rehearsal"] is True and "No figure here is a GPU measurement" in section["notes"][0]
    parts = section["parts"]
    assert list(parts) == list(gpu.BUDGETS)
    assert {name: part["status"] for name, part in parts.items()} == dict.fromkeys(gpu.BUDGETS, "ok")
    assert all(part["rehearsal"] == gpu.REHEARSED[name] for name, part in parts.items())  # what ran instead

    assert parts["tests"]["collected"] > 10 and "collected only" in parts["tests"]["not_run"]
    mnist = parts["training"]["mnist"]
    assert [row["model"] for row in mnist] == ["mlp", "cnn"] and all(0 < row["final_test_accuracy"] <= 1
                                                                     for row in mnist)
    assert 0 < parts["training"]["fruits"][0]["held_out_accuracy"] <= 1
    epochs = {row["implementation"]: row for row in parts["mnist_epoch"]["rows"]}
    assert {"xpnet graph", "xpnet fused", "xpnet reference", "torch eager", "torch cuda graphs"} <= set(epochs)
    for row in epochs.values():  # a time, or the reason there is none
        assert (row["s_per_epoch"] or 0) > 0 or row["status"].startswith(("not available", "PyTorch"))
    assert parts["cnn_epoch"]["rows"][0]["xpnet_s_per_epoch"] > 0
    assert parts["wide_mlp"]["device"]["ms_per_step"] > 0 and parts["wide_mlp"]["cpu_2_core"]["width"] == 4096
    measured = {row["kernel"] for row in parts["kernels"]["rows"]}  # the rest named as out of budget
    assert measured and all(case in measured or case in parts["kernels"]["skipped"] for case in kernels.CASES)
    assert all(row["device"] == "cuda simulator" and row["fused_s"] > 0 for row in parts["kernels"]["rows"])
    assert all(row["host_us"] > 0 for row in parts["launch_overhead"]["per_launch"])

    markdown = (folder / "results.md").read_text()
    assert all(f"## gpu: {name}" in markdown for name in gpu.BUDGETS)
    for chart in ("gpu_kernels.png", "gpu_epochs.png"):
        assert (folder / chart).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_device_script_refuses_to_prepare_from_a_folder_without_the_data(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_run.sh"), "prepare", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"device_run.sh: {tmp_path}/mnist is missing; name the data folder: "
                                        "benchmarks/device_run.sh prepare DIR"]
