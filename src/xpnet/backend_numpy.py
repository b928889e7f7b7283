"""The NumPy (CPU) backend: always usable, the fallback of ``--device auto``."""

from __future__ import annotations

import os
import platform

import numpy as np

from xpnet.backend_base import Backend
from xpnet.kernel_replay import KernelReplay
from xpnet.kernels.sets import CpuKernels, KernelSet


class NumpyBackend(Backend):
    """Backend whose arrays are NumPy arrays in host memory; fused kernels are Numba ``njit`` code."""

    name = "cpu"
    host_threads = True
    graph_runtime = KernelReplay
    readback_every = 1  # reading a host array costs nothing: the running loss is exact after every step
    # passes whose buffers stay in the caches: 8192 rows of a small CNN are 1.7 GB of patch matrices and activations,
    # faulted into memory on the first pass (1.3-1.6 s) and streamed through DRAM by every layer after it
    inference_bytes = 16 << 20

    @classmethod
    def create(cls, dtype: np.dtype, kernel_mode: str, seed: int | None) -> NumpyBackend:
        return cls(np, f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)", dtype, kernel_mode,
                   seed)

    @classmethod
    def fused_kernels(cls) -> type[KernelSet]:
        return CpuKernels
