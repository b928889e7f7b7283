"""Shared test fixtures: the real data beside the project, the GPU marker, and the CUDA simulator switch.

``XPNET_REQUIRE_GPU=1`` makes a ``gpu``-marked test that is skipped (no usable GPU, or a skip inside the test)
count as failed, for a run on a GPU machine where every GPU test must really run. ``XPNET_SHARED_DATA`` names
the data folder where ``../shared/data`` is not beside the checkout (as on a machine the checkout was copied to).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np
import pytest

from xpnet import threads
from xpnet.backend import BACKENDS, Backend, get_backend
from xpnet.backend_cupy import CupyBackend
from xpnet.backend_numpy import NumpyBackend

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XPNET_SHARED_DATA") or ROOT.parent / "shared" / "data")
REQUIRE_GPU = os.environ.get("XPNET_REQUIRE_GPU") == "1"

GPU_PROBLEM = BACKENDS["gpu"].problem()

# Without a GPU, Numba's CUDA kernels run under its simulator. This must be decided before numba.cuda is first
# imported, which is why it happens here, at collection time (importing xpnet loaded Numba's configuration
# already, so it is read again); with a GPU, the real device is used.
if GPU_PROBLEM is not None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    numba.core.config.reload_config()


class SimulatedGpu(NumpyBackend):
    """The GPU backend's kernel sets and read-back cadence on host arrays: its CUDA kernels run in Numba's simulator
    (set above), so that models train on them on any machine."""

    name = "gpu"
    readback_every = CupyBackend.readback_every
    fused_kernels = CupyBackend.fused_kernels


def fused_float64_backend(name: str, seed: int) -> Backend:
    """The fused float64 backend ``name``: "cpu", or "gpu" simulated on host arrays (``SimulatedGpu``)."""
    if name == "gpu":
        return SimulatedGpu(np, "CUDA simulator", np.dtype("float64"), "fused", seed)
    return get_backend(name, "float64", seed, "fused")


# The thread governor changes BLAS's thread count with the machine's load, and OpenBLAS's sums of some shapes
# depend on its thread count: tests that compare runs bit for bit (resumes) pin the count auto would start with.
os.environ.setdefault(threads.THREADS_ENV, str(threads.parse_setting("auto").count))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project root: real MNIST and Fruits-360 files (never downloaded by tests)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.fail(f"the shared data folder is missing: expected {SHARED_DATA} with mnist/ and fruits-360/ in it "
                    "(or set $XPNET_SHARED_DATA to one)")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if GPU_PROBLEM is None:
        return
    skip_gpu = pytest.mark.skip(reason=f"needs a CUDA GPU: {GPU_PROBLEM}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``XPNET_REQUIRE_GPU=1``, a skipped ``gpu`` test is reported as failed, with the skip's reason."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_GPU and report.skipped and "gpu" in item.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"XPNET_REQUIRE_GPU=1, but this GPU test was skipped: {reason}"


@pytest.fixture
def parallel_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fused CPU kernel runs its parallel twin, at any size and even where Numba has one thread."""
    from xpnet.kernels import numba_cpu, sets  # noqa: F401  (sets imports every family's twins)

    monkeypatch.setattr(numba_cpu, "threads_in_use", lambda: 2)
    for twin in numba_cpu.TWINS.values():
        monkeypatch.setattr(twin, "threshold", 0)
