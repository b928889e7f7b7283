"""Heartbeats on one machine: a rank that stops answering (here: stopped with SIGSTOP, as a hung host would be)
is named with its host by the rank watching it, and the job ends instead of waiting forever in the Allreduce.

The ranks talk over TCP as between hosts (no shared memory): a rank stopped in the middle of a shared-memory
exchange could leave the other spinning on a lock in MPICH, which no host that is merely silent can do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_distributed import ENV, MPIEXEC, _ranks_of, _train, _wait_for, needs_mpi

from xpnet.distributed import SILENCE_SECONDS

OVER_TCP = {**ENV, "MPIR_CVAR_NOLOCAL": "1", "MPIR_CVAR_CH4_NETMOD": "ucx", "UCX_TLS": "tcp"}


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
        _, err = process.communicate(timeout=SILENCE_SECONDS + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the job did not end: {process.communicate()[1][-3000:]}")
    finally:
        for pid in ranks:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    assert process.returncode != 0 and time.monotonic() - stopped < SILENCE_SECONDS + 30, err
    errors = [line for line in err.splitlines() if line.startswith("xpnet: error:")]
    assert len(errors) == 1, err
    assert f"rank 1 on host {socket.gethostname()} stopped answering" in errors[0]
