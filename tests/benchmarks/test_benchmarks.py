"""The benchmark suite: its helpers, and a --quick run end to end (as CI runs it, so the harness never rots)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xpnet.kernels.registry import kernels as declared_kernels

from benchmarks import distributed, machine, report, threads, training_step
from benchmarks.__main__ import earlier_sections
from benchmarks.config import make_config
from benchmarks.kernels import CASES
from benchmarks.peers import torch_version
from xpnet.cli import main as xpnet_main

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"kernels", "training_step", "end_to_end", "peers", "cnn", "distributed", "data_sources", "threads"}


def test_crossover_is_the_smallest_batch_where_the_gpu_wins() -> None:
    rows = [{"width": 64, "batch": 32, "speedup": 0.5}, {"width": 64, "batch": 128, "speedup": 1.5},
            {"width": 64, "batch": 512, "speedup": 3.0}, {"width": 256, "batch": 32, "speedup": 0.9},
            {"width": 1024, "batch": 32}]
    assert training_step.crossovers(rows, [64, 256, 1024]) == {64: 128, 256: None, 1024: None}


def test_ring_allreduce_model_moves_2_n_minus_1_over_n_times_the_buffer() -> None:
    assert [distributed.ring_bytes(n, 1000) for n in (1, 2, 4)] == [0, 4000, 6000]
    # 4 ranks: 6 hops of 10 us, and 1.5 x 1 MB at 1 GB/s
    assert math.isclose(distributed.ring_allreduce_ms(4, 1e6, 10e-6, 1e9), 0.06 + 1.5)
    one, two = distributed.epoch_model(compute_ms=10.0, update_ms=1.0, parameters=1000, bandwidth=4e6)[:2]
    steps = math.ceil(60000 / 128)
    assert one == {"nodes": 1, "compute_s": steps * 0.011, "allreduce_s": 0.0, "epoch_s": steps * 0.011}
    assert two["compute_s"] == steps * 0.006 and two["allreduce_s"] == steps * 1e-3  # 4000 bytes at 4 MB/s


def test_machine_slug_names_hardware_only() -> None:
    description = {"cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 16, "gpu": {"gpu": "NVIDIA H100 80GB HBM3"}}
    assert machine.slug(description) == "amd-epyc-7b13-64-core-processor-16c-nvidia-h100-80gb-hbm3"
    assert machine.slug({**description, "gpu": {"absent": "no CUDA device found"}}) == (
        "amd-epyc-7b13-64-core-processor-16c")


def test_markdown_table_takes_columns_from_all_rows() -> None:
    table = report.markdown_table([{"a": 1, "b": 0.123456}, {"a": 2, "c": None}])
    assert table.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1 | 0.1235 | — |", "| 2 | — | — |"]


def test_every_kernel_has_a_case() -> None:
    assert set(declared_kernels()) <= {kernel for kernel, _ in CASES.values()}


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


def check_distributed_section(section: dict, missing: str | None) -> None:
    """The distributed section: 1, 2 and 4 ranks on this host and across two (where namespaces can be made), or
    with MPI ``missing`` no rows and the reason."""
    if missing:
        assert section["rows"] == [] and section["notes"] == [missing] and "error" not in section
        return
    jobs = {row["ranks"]: row for row in section["rows"]}
    assert set(jobs) == {1, 2, 4} and jobs[2]["rows_per_rank"] == 64
    assert all(_positive(row[f"{phase}_ms"]) for row in jobs.values() for phase in ("compute", "allreduce"))
    assert jobs[2]["allreduce_bytes"] == 4 * jobs[2]["parameters"]
    across = section["two_hosts_rows"]  # empty, with a note saying why, where the machine can't make two hosts
    assert [row["ranks"] for row in across] == ([] if section["two_hosts_link"] is None else [1, 2, 4])
    assert all(row["link_mb_sent_a_to_b"] > 0 and _positive(row["ring_model_allreduce_ms"]) for row in across[1:])


def test_without_mpi4py_the_mpi_sections_say_why_and_the_run_succeeds(tmp_path: Path, shared_data: Path) -> None:
    """The README's set-up without the mpi extra (simulated: ``mpi4py`` fails to import) still runs the benchmarks
    and their tests: the MPI parts are recorded as skipped, with the reason, not as errors."""
    blocker = tmp_path / "no_mpi" / "mpi4py"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "benchmarks", "--quick", "--sections", "distributed", "--out", str(tmp_path),
               "--machine", "ci", "--data-dir", str(shared_data)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    section = json.loads((tmp_path / "ci" / "quick" / "results.json").read_text())["sections"]["distributed"]
    check_distributed_section(section, "MPI absent (mpi4py does not import): pip install -e '.[mpi]'")


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
    assert 0 < peers["matrix products alone (cpu)"]["ratio_to_xpnet_fused"] < 1  # a bound below the whole step
    assert 0 < peers["Adam updates alone (cpu)"]["ratio_to_xpnet_fused"] < 1  # a part of the step
    assert 0 < peers["products and Adam in step order (cpu)"]["ratio_to_xpnet_fused"] < 1  # the step's floor
    assert (peers["torch (cpu)"]["s_per_epoch"] is None) == (sections["peers"]["torch"] is None)

    mnist = sections["end_to_end"]["mnist"][0]
    assert 0 < mnist["test_accuracy"][-1] <= 1 and _positive(mnist["epoch_s_median"])
    fruit = sections["end_to_end"]["fruits"][0]
    assert _positive(fruit["histogram_images_per_s"]) and _positive(fruit["train_s"])

    cnn = sections["cnn"]
    assert _positive(cnn["epochs"][0]["xpnet_s_per_epoch"]) and 0 < cnn["accuracy"]["final_test_accuracy"] <= 1
    assert cnn["quick_accuracy"]["settings_beyond_the_cli_defaults"]["filters"] == "8,32"
    assert len(cnn["quick_accuracy"]["test_accuracy"]) == 1  # --quick: one epoch
    missing = distributed.mpi_missing()  # without the mpi extra the MPI records say why they were skipped
    ranks = cnn["quick_accuracy_ranks"]  # the same run as two data-parallel ranks: the same steps, to round-off
    if missing:
        assert ranks == {"ranks": 2, "skipped": missing}
    else:
        assert ranks["ranks"] == 2 and len(ranks["test_accuracy"]) == 1
        assert abs(ranks["final_test_accuracy"] - cnn["quick_accuracy"]["final_test_accuracy"]) < 0.02
    assert all(_positive(row["gflops"]) and _positive(row["sgemm_gflops"]) for row in cnn["convolutions"])
    assert [row["matmuls"] for row in cnn["convolutions"]] == [2, 3]  # no input gradient for the first

    check_distributed_section(sections["distributed"], missing)

    data = sections["data_sources"]
    assert data["csv"][0]["rows"] == 1000 and data["csv"][0]["columns"] == 785
    assert _positive(data["csv"][0]["scan_rows_per_s"]) and _positive(data["csv"][0]["streamed_rows_per_s"])
    assert {row["size"] for row in data["images"]} >= {"64x64 rgb", "64x64 grey"}
    assert all(_positive(row["images_per_s"]) for row in data["images"])
    assert all(_positive(row["resident_s"]) and _positive(row["streamed_s"]) for row in data["epochs"])

    # quick: idle (MLP, CNN), then the MLP beside a second copy
    contention, torch = sections["threads"], torch_version() is not None
    assert [(row["condition"], row["workload"]) for row in contention["rows"]] == [
        ("idle", "mlp"), ("idle", "cnn"), ("a second copy of the same training", "mlp")]
    for row in contention["rows"]:
        assert all(_positive(value) for key, value in row.items() if key.endswith(" s"))
        assert [end[-6:] for end in row["governed: threads at the end"]] == ["(auto)"]  # quick: one round
        assert ("governed / torch" in row) == torch
        # a placement probe before and after each measurement (3 or 4 of them; none on a single core)
        assert (re.fullmatch(rf"([0-2]/2 ){{{2 + torch}}}[0-2]/2", row["one shared cache (probes)"])
                or len(os.sched_getaffinity(0)) < 2)
    profile = {row["part"]: row for row in contention["cnn_step_profile"]}
    assert "1 conv2d forward" in profile and "optimizer update" in profile
    assert all(_positive(value) for value in profile["whole step"].values() if isinstance(value, float))

    markdown = (folder / "results.md").read_text()
    assert all(f"## {name}" in markdown for name in SECTIONS) and "| device | kernel |" in markdown
    for chart in ("kernels.png", "training_step.png", "distributed.png"):
        data = (folder / chart).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000

    # re-measuring one section replaces it and keeps the others as they were
    again = subprocess.run([*command, "--sections", "peers"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    rerun = json.loads((folder / "results.json").read_text())["sections"]
    assert set(rerun) == SECTIONS and rerun["kernels"] == sections["kernels"]
    assert rerun["peers"]["command"].endswith("--sections peers")

def test_without_matplotlib_the_suite_stops_at_once_naming_the_bench_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert xpnet_main(["bench", "--quick", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet bench: error:"), lines
    assert "matplotlib" in lines[0] and "'.[bench]'" in lines[0]
    assert not list(tmp_path.iterdir())


def test_a_missing_pytorch_is_noted_with_the_bench_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.__main__ import missing_peer_notes

    monkeypatch.setitem(sys.modules, "torch", None)
    notes = missing_peer_notes()
    assert len(notes) == 1 and "PyTorch absent" in notes[0] and "'.[bench]'" in notes[0]


def test_without_pytorch_the_threads_section_times_xpnet_alone_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    measured: list[tuple[list[str], list[list[str]]]] = []

    def measure(command: list[str], count: str, loads: list[list[str]], settle: float) -> dict:
        measured.append((command, loads))
        return {"seconds": 1.0, "threads": f"{count} (auto)", "ms": {"whole step": 1.0}, "shared cache": [True, True]}

    monkeypatch.setattr(threads, "measure", measure)
    section = threads.run(make_config(True, tmp_path, "cpu"))
    assert not [command for command, loads in measured for line in (command, *loads) if "torch" in line]
    assert [row["condition"] for row in section["rows"]] == ["idle", "idle", "a second copy of the same training"]
    assert not [key for row in section["rows"] for key in row if "torch" in key]
    assert any(note.startswith("PyTorch absent") for note in section["notes"])


def test_threads_rows_take_each_candidates_median_over_alternating_rounds(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    """Full mode: every candidate runs once a round, in turn, so drift reaches all of them; cells are medians."""
    monkeypatch.setitem(sys.modules, "torch", None)
    order: list[str] = []
    seconds = {"1": [5.0, 9.0, 6.0], str(threads.cores()): [3.0, 2.0, 8.0], "auto": [4.0, 3.0, 2.5]}

    def measure(command: list[str], count: str, loads: list[list[str]], settle: float) -> dict:
        if command[3] == "profile":
            return {"ms": {"whole step": 1.0}, "shared cache": [True, True]}
        order.append(count)
        taken = sum(1 for earlier in order if earlier == count) - 1
        return {"seconds": seconds[count][taken % 3], "threads": f"{count} (auto)", "shared cache": [True, False]}

    monkeypatch.setattr(threads, "measure", measure)
    monkeypatch.setattr(threads, "conditions", lambda config, torch: {"idle": lambda command: []})
    monkeypatch.setattr(threads, "workloads", lambda config, condition: ("cnn",))
    row = threads.run(make_config(False, tmp_path, "cpu"))["rows"][0]
    every = str(threads.cores())
    assert order == ["1", every, "auto"] * threads.ROUNDS[False] and threads.ROUNDS[False] == 3
    assert row["xpnet 1 thread s"] == 6.0 and row["xpnet 1 thread s (rounds)"] == [5.0, 9.0, 6.0]
    assert row["xpnet auto (governed) s"] == 3.0 and row["governed / best fixed"] == 3.0 / min(6.0, 3.0)
    assert row["governed / best fixed (rounds)"] == [4.0 / 3.0, 3.0 / 2.0, 2.5 / 6.0]
    assert row["governed: threads at the end"] == ["auto (auto)"] * 3
    assert row["one shared cache (probes)"] == "3/6 3/6 3/6"


def _captured_figure(monkeypatch: pytest.MonkeyPatch) -> list:
    figures: list = []
    monkeypatch.setattr(report, "_save_figure", lambda figure, path: figures.append(figure) or path)
    return figures


def test_the_step_chart_has_plain_ticks_and_no_empty_gpu_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _captured_figure(monkeypatch)
    rows = [{"width": w, "batch": b, "cpu_ms": 0.01 * w * b ** 0.5} for w in (64, 256) for b in (32, 128, 512)]
    report.training_chart({"rows": rows}, Path("unused.png"))
    (axis,) = figures[0].axes  # one panel: no GPU was measured
    figures[0].canvas.draw()
    labels = [tick.get_text() for tick in axis.get_xticklabels() + axis.get_yticklabels() if tick.get_text()]
    assert "32" in labels and "512" in labels
    assert not [label for label in labels if "times" in label or "^" in label], labels  # no 6x10^0
    with_gpu = [{**row, "gpu_ms": 1.0, "speedup": row["cpu_ms"]} for row in rows]
    report.training_chart({"rows": with_gpu}, Path("unused.png"))
    assert len(figures[1].axes) == 2


def test_the_copy_line_is_labelled_and_unlike_a_panel_divider(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _captured_figure(monkeypatch)
    rows = [{"device": "cpu", "kernel": "k", "elements": n, "fused_gb_per_s": 5.0, "reference_gb_per_s": 2.0}
            for n in (10**4, 10**5)]
    report.kernel_chart({"rows": rows, "copy_bandwidth": {"cpu": {"gb_per_s": 20.0}}}, Path("unused.png"))
    (copy,) = [line for line in figures[0].axes[0].get_lines() if "array copy" in str(line.get_label())]
    assert copy.get_linestyle() == ":" and copy.get_color() != "black"


def test_every_kernel_line_has_its_own_colour_and_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _captured_figure(monkeypatch)
    rows = [{"device": "cpu", "kernel": f"k{k}", "elements": n, "fused_gb_per_s": 5.0 + k, "reference_gb_per_s": 2.0}
            for k in range(45) for n in (10**4, 10**5)]
    report.kernel_chart({"rows": rows, "copy_bandwidth": {"cpu": {"gb_per_s": 20.0}}}, Path("unused.png"))
    styles = [(tuple(line.get_color()), line.get_marker()) for line in figures[0].axes[0].get_lines()
              if str(line.get_label()).startswith("k")]
    assert len(styles) == 45 and len(set(styles)) == 45


def test_import_order_runs_each_arrangement_every_round_and_reports_medians(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import import_order

    seen: list[tuple[str, str | None]] = []

    def fake_run(first: str, spin: str | None, data_dir: str) -> dict[str, object]:
        seen.append((first, spin))
        return {"mlp": len(seen), "cnn": 10.0 * len(seen), "blas_idle": f"{first} {spin}"}

    monkeypatch.setattr(import_order, "_run", fake_run)
    result = import_order.compare(3, "unused")
    assert seen == list(import_order.ARRANGEMENTS.values()) * 3  # every round runs each arrangement in turn
    numpy_first = result["arrangements"]["numpy first"]
    assert numpy_first["mlp_s"] == [2, 5, 8] and numpy_first["mlp_median_s"] == 5
    assert numpy_first["cnn_median_s"] == 50.0 and numpy_first["blas_idle"] == "numpy None"
    assert result["arrangements"]["numpy first, default spin"]["blas_idle"] == "numpy 28"


def test_kernel_ab_times_the_step_with_each_version_and_refuses_an_unknown_kernel(shared_data: Path) -> None:
    from benchmarks import kernel_ab

    result = kernel_ab.compare(["weight_gradient", "product"], blocks=2, steps=2, data_dir=str(shared_data))
    assert result["kernels"] == ["weight_gradient", "product"] and result["steps_each"] == 4
    assert result["fused_ms"] > 0 and result["reference_ms"] > 0
    assert result["fused_over_reference"] == result["fused_ms"] / result["reference_ms"]
    with pytest.raises(SystemExit):
        kernel_ab.main(["no_such_kernel"])


@pytest.mark.parametrize(("cross_ms", "shared"), [(0.045, True), (0.063, True), (0.065, False), (0.11, False)])
def test_placement_calls_caches_separate_when_the_other_core_reads_much_slower(
        monkeypatch: pytest.MonkeyPatch, cross_ms: float, shared: bool) -> None:
    from benchmarks import placement

    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: {5, 1, 3})
    calls: list[tuple[int, int]] = []

    def read(writer: int, reader: int, rounds: int = 15) -> dict[str, float]:
        calls.append((writer, reader))
        return {"local ms": 0.040, "cross ms": cross_ms}

    monkeypatch.setattr(placement, "cross_core_read", read)
    result = placement.placement()
    assert calls == [(1, 3)] and result["cores"] == [1, 3] and result["shared cache"] is shared


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the probe needs two usable cores")
def test_placement_times_a_read_on_each_core() -> None:
    from benchmarks import placement

    result = placement.placement(rounds=3)
    assert result["local ms"] > 0 and result["cross ms"] > 0 and isinstance(result["shared cache"], bool)
    assert len(result["cores"]) == 2 and set(result["cores"]) <= os.sched_getaffinity(0)


def test_placement_on_one_core_says_so_and_the_watch_exits_non_zero() -> None:
    one_core = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
                "from benchmarks import placement; print(placement.placement()); placement.main(['--seconds', '1'])")
    done = subprocess.run([sys.executable, "-c", one_core], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "'shared cache': None" in done.stdout and "one usable core" in done.stdout
    assert done.returncode != 0 and "nothing to measure, one usable core" in done.stderr


def test_placement_steps_groups_only_rounds_whose_probes_agree(monkeypatch: pytest.MonkeyPatch,
                                                              shared_data: Path) -> None:
    from benchmarks import placement_steps

    probes = iter([True, True, False, False, True, False])
    monkeypatch.setattr(placement_steps, "placement", lambda: {"shared cache": next(probes), "cross ms": 0.05})
    result = placement_steps.compare(rounds=3, steps=2, data_dir=str(shared_data))
    assert [r["shared cache"] for r in result["rounds"]] == [[True, True], [False, False], [True, False]]
    every = placement_steps.cores()
    for name, index in (("one shared cache", 0), ("separate caches", 1)):
        group, listed = result["by_placement"][name], result["rounds"][index]
        assert group["rounds"] == 1 and group[f"{every} threads ms"] == listed[f"{every} threads ms"] > 0
        assert group["speed-up"] == listed["1 thread ms"] / listed[f"{every} threads ms"]


def test_sched_slice_alternates_the_settings_in_one_process(monkeypatch: pytest.MonkeyPatch,
                                                            shared_data: Path) -> None:
    from benchmarks import sched_slice
    from xpnet import scheduling

    applied: list[int | None] = []
    monkeypatch.setattr(scheduling, "apply_slice", applied.append)
    result = sched_slice.alternate("mlp", rounds=3, steps=2, data_dir=str(shared_data))
    # threads.configure() asks first; then each pair in turn starts with the other setting
    assert applied == [100, 100, None, None, 100, 100, None]
    assert result["short slices ms"] > 0 and result["kernel's slices ms"] > 0
    low, high = result["ratio range"]
    assert 0 < low <= result["ratio median"] <= high


def test_sched_slice_runs_a_worker_beside_each_load(monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    from benchmarks import sched_slice

    every = sched_slice.loads("cnn", str(shared_data))
    assert list(every) == ["nothing", "a low-priority PyTorch training", "two nice -n 19 busy processes",
                           "one busy process", "a second copy of the same training"]
    assert all(command[:3] == ["nice", "-n", "19"] for command in every["two nice -n 19 busy processes"])
    assert every["a second copy of the same training"][0][-5:-3] == ["cnn", "xpnet"]
    monkeypatch.setattr(sched_slice, "loads", lambda workload, data_dir: {"one busy process": [sched_slice.BUSY]})
    monkeypatch.setattr(sched_slice, "cores", lambda: 1)
    rows = sched_slice.measure(["mlp"], rounds=2, steps=2, data_dir=str(shared_data))["rows"]
    assert [(row["workload"], row["load"], row["threads"]) for row in rows] == [("mlp", "one busy process", 1)]
    assert rows[0]["short slices ms"] > 0 and len(rows[0]["shared cache"]) == 2


def test_the_calibration_gathers_new_rows_at_every_call() -> None:
    """Training draws each batch's rows anew, so the gather's switch is calibrated on fresh rows, not on one batch
    that stays in cache after its first call."""
    from benchmarks.parallel_thresholds import CALIBRATION_CASES, FreshBatches, _candidate

    out, src, batches = CALIBRATION_CASES["gather.gather_rows"](784 * 4, np.random.default_rng(0))
    assert isinstance(batches, FreshBatches) and src.shape == (60_000, 784)
    seen = []
    candidate = _candidate(lambda out, src, idx: seen.append(idx.copy()), (out, src, batches))
    for _ in range(3):
        candidate.run()
    assert [list(idx) for idx in seen] == [list(batches.batches[k]) for k in (1, 2, 3)]
