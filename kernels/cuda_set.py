"""``CudaKernels``: the Numba CUDA kernel set, for CuPy arrays (imported only on the GPU backend)."""

from __future__ import annotations

from typing import Any

from .numba_cuda import compile_kernels
from .registry import KernelSet


class CudaKernels(KernelSet, variant="cuda"):
    """Numba CUDA kernels on CuPy's current stream; what a family's ``cuda.py`` lacks falls back to the reference."""

    mode = "fused"

    def compile(self, dtype: Any) -> None:
        compile_kernels(dtype)
