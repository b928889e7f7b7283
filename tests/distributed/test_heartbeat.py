"""Heartbeats on one machine: a rank that stops answering (here: stopped with SIGSTOP, as a hung host would be)
is named with its host by the rank watching it, and the job ends instead of waiting forever in the Allreduce.

The ranks talk over TCP as between hosts (no shared memory): a rank stopped in the middle of a shared-memory
exchange could leave the other spinning on a lock in MPICH, which no host that is merely silent can do."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_distributed import ENV, MPIEXEC, _ranks_of, _train, _wait_for, needs_mpi

from xpnet.distributed import SILENCE_ENV, SILENCE_SECONDS

SILENCE = 8.0
"""The silence after which the test's jobs declare a rank lost (``$XPNET_SILENCE_SECONDS``; the default is 30 s)."""
OVER_TCP = {**ENV, "MPIR_CVAR_NOLOCAL": "1", "MPIR_CVAR_CH4_NETMOD": "ucx", "UCX_TLS": "tcp", SILENCE_ENV: str(SILENCE)}


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks' pids through /proc")
def test_a_rank_that_stops_answering_is_named_and_ends_the_job(shared_data, tmp_path) -> None:
    args = _train(shared_data, tmp_path, "--quiet", "--epochs", "5")
    process = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=OVER_TCP)
    _wait_for((tmp_path / "ckpt", "checkpoint-e00001-*.npz"), process)
    ranks = _ranks_of(process.pid)
    assert len(ranks) == 2, ranks
    (rank_1,) = [pid for pid in ranks if b"PMI_RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")]
    os.kill(rank_1, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        _, err = process.communicate(timeout=SILENCE + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the job did not end: {process.communicate()[1][-3000:]}")
    finally:
        for pid in ranks:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    waited = time.monotonic() - stopped  # the silence, less the time since the last beat heard, and the abort
    assert process.returncode != 0 and SILENCE / 2 < waited < SILENCE + 15 < SILENCE_SECONDS, err
    errors = [line for line in err.splitlines() if line.startswith("xpnet: error:")]
    assert len(errors) == 1, err
    assert f"rank 1 on host {socket.gethostname()} stopped answering" in errors[0]


def _ring(silence: float, stay: float) -> subprocess.Popen:
    """Three ranks beating to each other (``heartbeat_target.py``); the launcher leaves a dead rank to them."""
    return subprocess.Popen([MPIEXEC, "-disable-auto-cleanup", "-n", "3", sys.executable,
                             str(Path(__file__).with_name("heartbeat_target.py")), str(silence), str(stay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _pids(process: subprocess.Popen) -> dict[int, int]:
    """Each rank's pid, from the ``ready RANK PID`` lines the ranks print first."""
    pids = {}
    while len(pids) < 3:
        line = process.stdout.readline()
        assert line.startswith("ready"), line + process.stderr.read()
        rank, pid = map(int, line.split()[1:])
        pids[rank] = pid
    return pids


@needs_mpi
def test_ranks_that_stop_one_after_another_say_goodbye_and_are_not_reported() -> None:
    out, err = _ring(silence=0.5, stay=1.0).communicate(timeout=60)
    assert sorted(out.splitlines()[3:]) == ["done 0", "done 1", "done 2"], out + err


@needs_mpi
@pytest.mark.parametrize(("sent", "silence", "why", "within"), [
    (signal.SIGKILL, 10, "its connection closed without a goodbye: its process ended", 3),
    (signal.SIGSTOP, 1, "no heartbeat for 1 s: its host hung or its network is down", 4),
])
def test_a_killed_rank_is_reported_at_once_and_a_silent_one_after_the_silence(sent, silence, why, within) -> None:
    process = _ring(silence=silence, stay=30.0)
    pids: dict[int, int] = {}
    try:
        pids = _pids(process)
        os.kill(pids[1], sent)
        stopped = time.monotonic()
        # the rank watching rank 1 (rank 2) reports it, once; the others stay quiet
        assert process.stdout.readline() == f"lost 1: {why}\n"
        assert time.monotonic() - stopped < within
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
    assert "lost" not in out


@needs_mpi
def test_a_rank_waiting_in_any_collective_lets_its_heartbeat_thread_run() -> None:
    """Rank 0 waits a second in each of the Communicator's collectives for rank 1; a thread of its own must keep
    waking meanwhile (a collective that kept the GIL, as mpi4py's pickled ``allreduce`` does, left about 1 wake
    of 100: a rank killed then hung the job, its watcher starved)."""
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(Path(__file__).with_name("collectives_target.py")),
                             "1.0"], capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    ticks = dict(line.split() for line in result.stdout.splitlines())
    assert sorted(ticks) == ["allreduce_mean", "any", "barrier", "check_same", "sum_host"], result.stdout
    assert all(int(count) >= 20 for count in ticks.values()), ticks
