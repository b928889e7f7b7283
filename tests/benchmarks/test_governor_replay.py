"""The governor's replay on recorded step times (benchmarks.governor_replay): the replay itself, and one trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import governor_replay, threads

ROOT = Path(__file__).resolve().parents[2]


def test_an_idle_machine_replays_to_all_threads_near_the_best_count() -> None:
    result = governor_replay.replay({1: [0.0013] * 500, 2: [0.0010] * 500}, trials=5, steps=2000)
    ratio = result["governed / best fixed"]
    assert 1.0 <= ratio["median"] <= ratio["p90"] <= ratio["max"] < 1.05
    assert result["share of steps"]["2"] > 0.95
    assert result["mean step ms"] == {"1": pytest.approx(1.3), "2": pytest.approx(1.0)}


def test_bursts_in_a_trace_reach_the_governed_run() -> None:
    """Two threads wait 25 ms a step from 0.55 to 0.95 s of every second of their trace (1 ms otherwise; one thread
    1.3 ms), so their mean loses: the replayed governor meets the bursts (steps drawn by time, not only the few it ran
    at two threads) and spends most steps at one thread."""
    two, clock = [], 0.0
    while clock < 5.0:
        two.append(0.025 if 0.55 <= clock % 1.0 < 0.95 else 0.0010)
        clock += two[-1]
    result = governor_replay.replay({1: [0.0013] * 1000, 2: two}, trials=20, steps=4000)
    assert result["mean step ms"]["2"] > result["mean step ms"]["1"]
    assert result["share of steps"]["1"] > 0.6
    assert 1.0 < result["governed / best fixed"]["median"] < 1.25


def test_a_trace_worker_prints_its_step_seconds(shared_data: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.governor_replay", "trace", "cnn", "quick",
                           str(shared_data), "4"], cwd=ROOT, env=threads.environment("1"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout.strip().splitlines()[-1])["steps"]
    assert len(steps) == 4 and all(0 < s < 5 for s in steps)


def _trace_file(path: Path, traces: dict) -> Path:
    path.write_text(json.dumps({"workload": "cnn", "started": "2026-12-06T13:40:22+00:00",
                                governor_replay.TRACES: traces}))
    return path


def test_saved_traces_replay_without_recording(tmp_path: Path) -> None:
    """``--traces`` replays a file that ``--out`` wrote (here a made-up one: two threads 10x slower) on the
    governor as it is now, and writes the same traces again with when they were recorded."""
    saved = _trace_file(tmp_path / "traces.json", {"two busy processes": {"1": [0.010] * 200, "2": [0.100] * 200}})
    governor_replay.main(["--traces", str(saved), "--trials", "3", "--out", str(tmp_path / "out.json")])
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["workload"] == "cnn" and out["traces recorded"] == "2026-12-06T13:40:22+00:00"
    assert out[governor_replay.TRACES] == json.loads(saved.read_text())[governor_replay.TRACES]
    assert out["command"].endswith(f"--traces {saved} --trials 3 --out {tmp_path / 'out.json'}")
    result = out["results"]["two busy processes"]  # a quick CNN epoch's steps: the warm-up and the probes' few
    assert result["share of steps"]["1"] > 0.95 and 1.0 < result["governed / best fixed"]["max"] < 1.25


@pytest.mark.parametrize("content", ["not json", json.dumps({"workload": "cnn"}),
                                     json.dumps({"workload": "rnn", governor_replay.TRACES: {"idle": {"1": [0.1]}}}),
                                     json.dumps({"workload": "cnn", governor_replay.TRACES: {"idle": {"1": []}}})])
def test_a_file_that_is_not_a_trace_file_is_refused_by_name(tmp_path: Path, content: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        governor_replay.main(["--traces", str(bad)])
    assert stopped.value.code == 2
    assert f"{bad}: not a trace file written by --out" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [[], ["--data-dir", "data", "--traces", "t.json"]])
def test_either_records_or_replays_saved_traces(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        governor_replay.main(arguments)
    assert "give --data-dir to record traces, or --traces FILE to replay saved ones" in capsys.readouterr().err
