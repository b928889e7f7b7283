"""Data-parallel training under ``mpiexec``: N ranks equal one process, faults end the job, the CLI's rules.

Every MPI job runs in a subprocess with a timeout, so that nothing here can hang.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed_target as target
import numpy as np
import pytest
from cli_helpers import assert_clean_error, xpnet

from benchmarks.distributed import mpi_missing, mpiexec_path
from xpnet import Dense, Dropout, Sequential
from xpnet.distributed import SILENCE_ENV, SILENCE_SECONDS, launched_ranks, silence_seconds
from xpnet.errors import ConfigError
from xpnet.layers import Phase
from xpnet.serialization import load_model
from xpnet.trainer import check_shares

HERE = Path(__file__).resolve().parent
MPIEXEC = mpiexec_path()
needs_mpi = pytest.mark.skipif(
    mpi_missing() is not None or MPIEXEC is None, reason=f"needs MPI: {mpi_missing() or 'no mpiexec'}")
ENV = {**os.environ, "XPNET_DEVICE": "cpu", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
"""One thread a rank: ranks sharing this machine's cores with BLAS threads of their own slow down many times."""
TIMEOUT = 240


def mpiexec(ranks: int, *args: str | Path, timeout: float = TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n RANKS python ARGS``, captured, with a timeout (``env`` added to the ranks' environment)."""
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, *map(str, args)], capture_output=True,
                          text=True, env={**ENV, **(env or {})}, timeout=timeout)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def one_process(kind: str, epochs: int, device: str = "cpu") -> dict[int, dict[str, np.ndarray]]:
    """What ``distributed_target`` writes, from one process without MPI: each epoch's parameters and state."""
    model, (x, y), seen = target.model(kind, device), target.task(), {}
    model.fit(x, y, epochs, target.BATCH, seed=3, verbose=0,
              callbacks=[lambda m, epoch, logs: seen.__setitem__(epoch, {**target.snapshot(m), "loss": logs["loss"]})])
    return seen


def run_ranks(ranks: int, kind: str, epochs: int, folder: Path, device: str = "cpu") -> list[dict[int, dict]]:
    """Every rank's snapshots after every epoch of ``distributed_target`` under ``mpiexec -n ranks``."""
    result = mpiexec(ranks, HERE / "distributed_target.py", folder, kind, epochs, device)
    assert result.returncode == 0, result.stderr
    return [{epoch: dict(np.load(folder / f"rank{rank}-epoch{epoch}.npz")) for epoch in range(1, epochs + 1)}
            for rank in range(ranks)]


# ------------------------------------------------------------------------------------------ without MPI
def test_launchers_are_detected_by_their_environment() -> None:
    assert launched_ranks({}) == 1
    assert launched_ranks({"PMI_SIZE": "4"}) == 4  # MPICH, Intel MPI
    assert launched_ranks({"OMPI_COMM_WORLD_SIZE": "3"}) == 3  # Open MPI
    assert launched_ranks({"SLURM_STEP_NUM_TASKS": "8"}) == 8  # srun


def test_shares_must_be_equal_and_the_hint_names_a_batch_size_that_works() -> None:
    check_shares(60000, 128, 2)  # 468 batches of 128 and the last of 96: 64 and 48 rows a rank
    with pytest.raises(ConfigError, match="batches of 100 samples cannot be shared equally by 3 ranks") as info:
        check_shares(60000, 100, 3)
    assert info.value.hint == "try --batch-size 99"
    with pytest.raises(ConfigError, match=r"the 60000 training samples cannot .* by 7 ranks: .* \(such as 6\)"):
        check_shares(60000, 700, 7)


def test_the_silence_before_a_rank_is_declared_lost_is_30_seconds_unless_set() -> None:
    assert silence_seconds({}) == silence_seconds({SILENCE_ENV: " "}) == SILENCE_SECONDS == 30
    assert silence_seconds({SILENCE_ENV: "12.5"}) == 12.5 and silence_seconds({SILENCE_ENV: "5"}) == 5


@pytest.mark.parametrize("text", ["soon", "4.9", "-30", "nan", "inf"])
def test_a_silence_that_is_not_a_number_of_seconds_from_5_is_refused_by_name(text) -> None:
    with pytest.raises(ConfigError, match=rf"^\$XPNET_SILENCE_SECONDS '{text}': give the seconds .* at least 5 "):
        silence_seconds({SILENCE_ENV: text})


def test_distributed_without_mpi4py_is_a_clear_error(shared_data, tmp_path) -> None:
    blocker = tmp_path / "no_mpi" / "mpi4py"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    result = xpnet("train", "mnist", "--data-dir", shared_data, "--distributed", "--epochs", "0",
                   "--save", tmp_path / "m.npz", env={"PYTHONPATH": str(blocker.parent)})
    assert_clean_error(result, "--distributed", "No module named mpi4py", "pip install 'xpnet[mpi]'")
    assert not (tmp_path / "m.npz").exists()


def test_each_rank_draws_its_own_dropout_masks_and_rank_0_those_of_one_process() -> None:
    model = Sequential([Dense(64, input_dim=8), Dropout(0.5, seed=3)], "mse", device="cpu", seed=0)
    workspace, x = model.workspace(4, backward=True), np.ones((4, 8))

    def kept(phase: Phase) -> np.ndarray:
        return model.forward(x, workspace, phase) != 0

    alone = kept(Phase(True, step=2))
    np.testing.assert_array_equal(kept(Phase(True, step=2, stream=0)), alone)
    others = [kept(Phase(True, step=2, stream=rank)) for rank in (1, 2)]
    assert all((mask != alone).mean() > 0.3 for mask in others) and (others[0] != others[1]).mean() > 0.3


# --------------------------------------------------------------------------------------------- equality
@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_train_exactly_like_one_process_with_the_same_global_batch(ranks, tmp_path) -> None:
    expected = one_process("mlp", 2)
    for rank, snapshots in enumerate(run_ranks(ranks, "mlp", 2, tmp_path)):
        for epoch in (1, 2):  # 8 steps an epoch (the last one short), Adam, float64
            got, want = snapshots[epoch], expected[epoch]
            assert relative_error(got["parameters"], want["parameters"]) < 1e-12, (rank, epoch)
            assert abs(float(got["loss"]) - want["loss"]) < 1e-12 * want["loss"], (rank, epoch)
            assert int(got["stream"]) == rank  # its own dropout masks


@needs_mpi
def test_batchnorm_normalises_by_each_ranks_share_and_keeps_the_ranks_alike(tmp_path) -> None:
    ranks = run_ranks(2, "batchnorm", 2, tmp_path)
    alone = one_process("batchnorm", 2)
    for epoch in (1, 2):
        # averaged every step: parameters and running statistics stay identical on every rank
        np.testing.assert_array_equal(ranks[0][epoch]["parameters"], ranks[1][epoch]["parameters"])
        np.testing.assert_array_equal(ranks[0][epoch]["state"], ranks[1][epoch]["state"])
    # the statistics that normalise a step are each rank's share's (documented): not one process's batch's
    assert relative_error(ranks[0][2]["parameters"], alone[2]["parameters"]) > 1e-6


@pytest.mark.gpu
@needs_mpi
def test_a_gpu_rank_reduces_over_nccl_like_one_process(tmp_path) -> None:
    expected = one_process("mlp", 2, "gpu")
    (snapshots,) = run_ranks(1, "mlp", 2, tmp_path, "gpu")
    for epoch in (1, 2):
        assert relative_error(snapshots[epoch]["parameters"], expected[epoch]["parameters"]) < 1e-12


# -------------------------------------------------------------------------------------------- the CLI
def _train(shared_data: Path, folder: Path, *extra: str) -> list[str]:
    return ["-m", "xpnet", "train", "mnist", "--data-dir", str(shared_data), "--epochs", "2", "--hidden", "16",
            "--batch-size", "1000", "--dtype", "float64", "--checkpoint-dir", str(folder / "ckpt"),
            "--save", str(folder / "model.npz"), *extra]


def _wait_for(path_glob: tuple[Path, str], process: subprocess.Popen, seconds: float = TIMEOUT) -> None:
    folder, pattern = path_glob
    deadline = time.monotonic() + seconds
    while not list(folder.glob(pattern)):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate(timeout=30)
        time.sleep(0.02)


@needs_mpi
def test_ctrl_c_stops_every_rank_and_resume_works_with_the_same_ranks_or_one_process(shared_data, tmp_path):
    straight = mpiexec(2, *_train(shared_data, tmp_path / "a", "--quiet", "--log-csv", str(tmp_path / "log.csv")))
    assert straight.returncode == 0, straight.stderr
    assert len(straight.stdout.strip().splitlines()) == 1  # rank 0 alone reports
    logged = (tmp_path / "log.csv").read_text().splitlines()  # and logs: one header, one row per epoch
    assert [line.split(",")[0] for line in logged] == ["epoch", "1", "2"]
    args = _train(shared_data, tmp_path / "b")
    process = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    _wait_for((tmp_path / "b" / "ckpt", "checkpoint-e00001-*.npz"), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert stderr.count("Total params") == 1 and stderr.count("checkpoint written to") == 1  # rank 0 alone speaks
    assert stderr.count("interrupted: finishing the current step") == 1
    shutil.copytree(tmp_path / "b", tmp_path / "c")

    wrong = mpiexec(3, *args, "--resume")
    assert_clean_error(wrong, "written by a run of 2 rank(s), not 3", "mpiexec -n 2")
    resumed = mpiexec(2, *args, "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    single = xpnet(*_train(shared_data, tmp_path / "c", "--resume", "--quiet")[2:])
    assert single.returncode == 0, single.stderr

    want = load_model(tmp_path / "a" / "model.npz", device="cpu").get_parameters()
    np.testing.assert_array_equal(load_model(tmp_path / "b" / "model.npz", device="cpu").get_parameters(), want)
    assert relative_error(load_model(tmp_path / "c" / "model.npz", device="cpu").get_parameters(), want) < 1e-12


@needs_mpi
def test_batch_sizes_the_ranks_cannot_share_are_refused_on_every_rank(shared_data, tmp_path) -> None:
    result = mpiexec(2, *_train(shared_data, tmp_path, "--batch-size", "999"))
    assert_clean_error(result, "batches of 999 samples cannot be shared equally by 2 ranks", "--batch-size 1000")
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "model.npz").exists()


@needs_mpi
def test_a_bad_silence_setting_stops_every_rank_before_training(shared_data, tmp_path) -> None:
    result = mpiexec(2, *_train(shared_data, tmp_path), env={SILENCE_ENV: "soon"})
    assert_clean_error(result, "$XPNET_SILENCE_SECONDS 'soon'", "at least 5")
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "model.npz").exists()


@needs_mpi
def test_ranks_started_with_different_settings_stop_with_one_line(shared_data, tmp_path) -> None:
    first = [sys.executable, *_train(shared_data, tmp_path)]
    result = subprocess.run([MPIEXEC, "-n", "1", *first, ":", "-n", "1", *first, "--lr", "0.01"],
                            capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    assert_clean_error(result, "disagree on the settings: rank 1 differs from rank 0")
    assert not (tmp_path / "ckpt").exists()


def _ranks_of(launcher: int) -> list[int]:
    """The pids of the Python processes below ``launcher`` (mpiexec's proxies start them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [launcher]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if b"xpnet" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks' pids through /proc")
def test_a_rank_that_dies_ends_the_others_in_bounded_time(shared_data, tmp_path) -> None:
    args = _train(shared_data, tmp_path, "--quiet", "--batch-size", "1200")  # 50 shares of 400 rows a rank
    process = subprocess.Popen([MPIEXEC, "-n", "3", sys.executable, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    _wait_for((tmp_path / "ckpt", "checkpoint-e00001-*.npz"), process)
    ranks = _ranks_of(process.pid)
    assert len(ranks) == 3, ranks
    os.kill(ranks[-1], signal.SIGKILL)
    killed = time.monotonic()
    process.communicate(timeout=60)
    assert process.returncode != 0 and time.monotonic() - killed < 60
    for pid in ranks:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


@needs_mpi
def test_a_rank_failing_alone_aborts_the_job(shared_data, tmp_path) -> None:
    # a folder where rank 0 will write its first checkpoint: the output paths pass the checks before training
    (tmp_path / "ckpt" / "checkpoint-e00001-b0000000.npz").mkdir(parents=True)
    started = time.monotonic()
    result = mpiexec(2, *_train(shared_data, tmp_path, "--quiet"), timeout=120)
    assert result.returncode != 0
    assert "rank 0 on host " in result.stderr and "failed alone" in result.stderr
    assert "aborting the other ranks" in result.stderr
    assert time.monotonic() - started < 120
