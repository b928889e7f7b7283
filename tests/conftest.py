"""Shared test fixtures: the real data beside the project, the GPU marker, and the CUDA simulator switch."""

from __future__ import annotations

import os
from pathlib import Path

import numba
import pytest

from xpnet import threads
from xpnet.backend_cupy import gpu_problem

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

GPU_PROBLEM = gpu_problem()

# Without a GPU, Numba's CUDA kernels run under its simulator. This must be decided before numba.cuda is first
# imported, which is why it happens here, at collection time (importing xpnet loaded Numba's configuration
# already, so it is read again); with a GPU, the real device is used.
if GPU_PROBLEM is not None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    numba.core.config.reload_config()


# The thread governor changes BLAS's thread count with the machine's load, and OpenBLAS's sums of some shapes
# depend on its thread count: tests that compare runs bit for bit (resumes) pin the count auto would start with.
os.environ.setdefault(threads.THREADS_ENV, str(threads.parse_setting("auto").count))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project root: real MNIST and Fruits-360 files (never downloaded by tests)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.fail(f"the shared data folder is missing: expected {SHARED_DATA} with mnist/ and fruits-360/ in it")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if GPU_PROBLEM is None:
        return
    skip_gpu = pytest.mark.skip(reason=f"needs a CUDA GPU: {GPU_PROBLEM}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
