"""Data-parallel training under ``mpiexec``: where a step's time goes, and a model of larger jobs.

- Measured here, for 1, 2 and 4 ranks of a 784-256-128-10 MLP (Adam, float32, one thread a rank) at a global batch
  of 128: per step, the forward + backward pass on the rank's share, the wait for the slowest rank, the in-place
  Allreduce of the flat gradient buffer (4P bytes) and the optimizer update; medians over the steps, rank 0's.
- The same across two hosts (``benchmarks.two_hosts``: two network namespaces joined by a veth link, ranks split
  evenly, MPICH over TCP), beside the link's latency and bandwidth from an MPI ping-pong of 8 bytes and of the
  gradient buffer, and the ring model's Allreduce time on that link: 2(N-1) x latency + 2(N-1)/N x 4P / bandwidth.
- Modelled: seconds per MNIST epoch on N nodes, each computing its share at the measured one-rank speed per
  sample, plus a ring Allreduce that moves 2(N-1)/N x 4P bytes per rank per step at a stated network bandwidth
  (latency ignored).

Each job is ``mpiexec -n R python -m benchmarks.distributed STEPS WARMUP`` (or ``... pingpong BYTES REPEATS``);
rank 0 prints its medians as JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import two_hosts
from benchmarks.config import REPO_ROOT, Config
from benchmarks.timing import log

SIZES = [784, 256, 128, 10]
BATCH = 128
MNIST_SAMPLES = 60000
RANKS = (1, 2, 4)
STEPS = {True: (20, 5), False: (300, 30)}
"""(timed steps, warm-up steps) per job, for quick and full mode."""
ROUND_TRIPS = {True: 10, False: 200}
"""Ping-pong round trips per message size, for quick and full mode."""
BANDWIDTHS = {"10 Gbit/s Ethernet": 1.25e9, "100 Gbit/s InfiniBand": 12.5e9}
"""Network bandwidths the model is drawn for, in bytes per second."""
NODES = (1, 2, 4, 8, 16, 32)
PHASES = ("compute", "wait", "allreduce", "update")


def ring_bytes(nodes: int, parameters: int, itemsize: int = 4) -> float:
    """Bytes each rank sends (and receives) in a ring Allreduce of ``parameters`` values: 2(N-1)/N x size."""
    return 2 * (nodes - 1) / nodes * itemsize * parameters


def epoch_model(compute_ms: float, update_ms: float, parameters: int, bandwidth: float) -> list[dict[str, Any]]:
    """Modelled seconds per MNIST epoch at global batch BATCH on each of NODES nodes, from one rank's step
    (``compute_ms`` for the whole batch scales with a node's share of it, ``update_ms`` does not) and a ring
    Allreduce of ``parameters`` float32 gradients at ``bandwidth`` bytes per second."""
    steps = math.ceil(MNIST_SAMPLES / BATCH)
    rows = []
    for nodes in NODES:
        compute = (compute_ms / nodes + update_ms) / 1e3
        network = ring_bytes(nodes, parameters) / bandwidth
        rows.append({"nodes": nodes, "compute_s": steps * compute, "allreduce_s": steps * network,
                     "epoch_s": steps * (compute + network)})
    return rows


def mpiexec_path() -> str | None:
    """mpiexec beside this Python (a venv's, or the mpich wheel's scripts), else on PATH."""
    folders = [str(Path(sys.executable).parent), sysconfig.get_path("scripts"), str(Path(sys.base_prefix) / "bin"),
               os.environ.get("PATH", "")]
    return shutil.which("mpiexec", path=os.pathsep.join(folders))


def mpi_missing() -> str | None:
    """Why no MPI job can start here (mpi4py does not import, or no mpiexec), or None. Importing the package (not
    ``mpi4py.MPI``) starts no MPI: it only tells an installed mpi4py from a missing or blocked one."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "MPI absent (mpi4py does not import): pip install -e '.[mpi]'"
    if mpiexec_path() is None:
        return "MPI absent (no mpiexec): pip install -e '.[mpi]'"
    return None


def ring_allreduce_ms(nodes: int, nbytes: float, latency_s: float, bandwidth: float) -> float:
    """The ring model's Allreduce time of ``nbytes`` over ``nodes`` ranks on links of ``latency_s`` and
    ``bandwidth`` bytes per second: 2(N-1) steps, each a latency and 1/N of the buffer."""
    return (2 * (nodes - 1) * latency_s + ring_bytes(nodes, nbytes, itemsize=1) / bandwidth) * 1e3


def mpi_job(ranks: int, module: str, *args: str, hosts: two_hosts.TwoHosts | None = None) -> dict[str, Any]:
    """``mpiexec -n ranks python -m module args...`` on the CPU, one thread a rank (Numba's and BLAS's: ranks
    sharing a machine never fight over its cores), on this machine or split evenly over two ``hosts``; the JSON
    line rank 0 prints last."""
    threads = dict.fromkeys(("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    env = {**os.environ, **threads, "XPNET_DEVICE": "cpu"}
    command = [mpiexec_path(), "-n", str(ranks), sys.executable, "-m", module, *args]
    if hosts is not None:
        command, env = hosts.job(ranks, command[3:], env, per_host=max(1, ranks // 2))
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"mpiexec -n {ranks} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(config: Config) -> dict[str, Any]:
    """Both jobs, then the epoch model from the one-rank job."""
    missing = mpi_missing()
    if missing:
        return {"rows": [], "notes": [missing]}
    steps, warmup = STEPS[config.quick]
    rows = []
    for ranks in RANKS:
        row = mpi_job(ranks, "benchmarks.distributed", str(steps), str(warmup))
        rows.append(row)
        log("distributed: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in row.items()))
    one, parameters = rows[0], rows[0]["parameters"]
    across = across_two_hosts(config, 4 * parameters)
    model = [{"network": name, **row} for name, bandwidth in BANDWIDTHS.items()
             for row in epoch_model(one["compute_ms"], one["update_ms"], parameters, bandwidth)]
    notes = [
        f"{SIZES} MLP, {parameters:,} parameters: {4 * parameters:,} bytes of float32 gradients per step; global "
        f"batch {BATCH} ({BATCH // RANKS[-1]} rows a rank at {RANKS[-1]} ranks); one thread a rank, ranks on this "
        f"machine's cores, Allreduce through MPICH's shared memory; medians of {steps} steps after {warmup}",
        "epoch model: ceil(60000 / 128) steps x (one-rank compute per sample x 128 / N + update + "
        "2(N-1)/N x 4P bytes / bandwidth); network latency and compute/communication overlap ignored",
        *across.pop("notes"),
    ]
    return {"rows": rows, "two_hosts_link": across["link"], "two_hosts_rows": across["rows"], "epoch_model": model,
            "notes": notes}


def across_two_hosts(config: Config, nbytes: int) -> dict[str, Any]:
    """The link's latency and bandwidth, then every job of ``run`` split over two hosts, each beside the ring
    model's Allreduce time on that link; empty with the reason where two hosts cannot be made here."""
    missing = two_hosts.unavailable()
    if missing:
        return {"link": None, "rows": [], "notes": [f"two hosts: {missing}"]}
    steps, warmup = STEPS[config.quick]
    with two_hosts.TwoHosts(REPO_ROOT) as hosts:
        link = mpi_job(2, "benchmarks.distributed", "pingpong", str(nbytes), str(ROUND_TRIPS[config.quick]),
                       hosts=hosts)
        rows = []
        for ranks in RANKS:
            before = hosts.link_bytes()
            row = mpi_job(ranks, "benchmarks.distributed", str(steps), str(warmup), hosts=hosts)
            row["link_mb_sent_a_to_b"] = (hosts.link_bytes() - before) / 1e6
            if ranks > 1:
                row["ring_model_allreduce_ms"] = ring_allreduce_ms(ranks, nbytes, link["latency_us"] / 1e6,
                                                                   link["bandwidth_gb_per_s"] * 1e9)
                row["measured_over_model"] = row["allreduce_ms"] / row["ring_model_allreduce_ms"]
            rows.append(row)
            log(f"distributed, two hosts: {ranks} rank(s), step {row['step_ms']:.3g} ms, allreduce "
                f"{row['allreduce_ms']:.3g} ms (ring model {row.get('ring_model_allreduce_ms', 0):.3g} ms)")
    notes = [
        f"two hosts: network namespaces joined by a veth link, ranks split evenly (1 rank: host A alone), MPICH over "
        f"TCP (UCX); link {link['latency_us']:.1f} us one way, {link['bandwidth_gb_per_s']:.2f} GB/s, from a "
        f"ping-pong of 8 and {nbytes:,} bytes; ring model 2(N-1) x latency + 2(N-1)/N x 4P / bandwidth, every "
        "hop priced as the veth link (with 2 ranks a host, 2 of the 4 hops stay on a host)",
    ]
    return {"link": link, "rows": rows, "notes": notes}


# --------------------------------------------------------------------------------------------- one rank
def worker(steps: int, warmup: int) -> None:
    """Time ``steps`` training steps on this rank's share of random batches; rank 0 prints the medians."""
    from xpnet.backend import get_backend
    from xpnet.builders import mlp
    from xpnet.distributed import Communicator

    communicator = Communicator()
    backend = get_backend("cpu", "float32", seed=0)
    model = mlp(SIZES, optimizer="adam", backend=backend)
    communicator.attach(backend)
    share = BATCH // communicator.size
    rng = np.random.default_rng(communicator.rank)
    x = rng.random((share, SIZES[0]), dtype=np.float32)
    y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], share)]
    workspace, stats = model.workspace(share, backward=True), backend.zeros(2, dtype=np.float64)
    marks: list[float] = []

    def timed_reduce(grads: Any) -> None:
        marks.append(time.perf_counter())
        communicator.barrier()
        marks.append(time.perf_counter())
        communicator.allreduce_mean(grads)
        marks.append(time.perf_counter())

    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    communicator.barrier()
    for step in range(warmup + steps):
        marks.clear()
        started = time.perf_counter()
        model.train_step(x, y, workspace, stats, timed_reduce)
        ended = time.perf_counter()
        if step >= warmup:
            for phase, (a, b) in zip(PHASES, zip([started, *marks], [*marks, ended], strict=True), strict=True):
                times[phase].append((b - a) * 1e3)
    if communicator.rank == 0:
        row: dict[str, Any] = {"ranks": communicator.size, "rows_per_rank": share}
        row |= {f"{phase}_ms": statistics.median(values) for phase, values in times.items()}
        row["step_ms"] = sum(row[f"{phase}_ms"] for phase in PHASES)
        row["parameters"] = model.parameter_count
        row["allreduce_bytes"] = 4 * model.parameter_count
        row["allreduce_gb_per_s"] = ring_bytes(communicator.size, model.parameter_count) / (
            row["allreduce_ms"] / 1e3) / 1e9 if communicator.size > 1 else None
        print(json.dumps(row), flush=True)


def pingpong(nbytes: int, round_trips: int) -> None:
    """Ranks 0 and 1 bounce 8 bytes, then ``nbytes``, ``round_trips`` times each; rank 0 prints the one-way
    latency and the bandwidth (the large message's one-way time less the latency) as JSON."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    one_way = {}
    for size in (8, nbytes):
        buffer, times = np.zeros(size, np.uint8), []
        for trip in range(round_trips + 2):
            world.Barrier()
            started = time.perf_counter()
            if world.rank == 0:
                world.Send(buffer, dest=1)
                world.Recv(buffer, source=1)
            elif world.rank == 1:
                world.Recv(buffer, source=0)
                world.Send(buffer, dest=0)
            if trip >= 2:
                times.append((time.perf_counter() - started) / 2)
        one_way[size] = statistics.median(times)
    if world.rank == 0:
        latency = one_way[8]
        print(json.dumps({"bytes": nbytes, "latency_us": latency * 1e6,
                          "bandwidth_gb_per_s": nbytes / max(one_way[nbytes] - latency, 1e-9) / 1e9}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "pingpong":
        pingpong(int(sys.argv[2]), int(sys.argv[3]))
    else:
        worker(int(sys.argv[1]), int(sys.argv[2]))
