"""The CuPy (CUDA GPU) backend: the only module of xpnet that imports ``cupy``."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.backend import Backend


def gpu_problem() -> str | None:
    """Why the GPU cannot be used, in a few words, or None when CuPy, a device and a tiny kernel all work."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install it with pip install 'xpnet[cuda12]' or 'xpnet[cuda13]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises CUDARuntimeError subclasses that vary by version
        return f"CUDA driver error: {exc}"
    if count == 0:
        return "no CUDA device found"
    try:
        probe = cupy.arange(8, dtype=cupy.float32)
        if float((probe * 2).sum()) != 56.0:
            return "a test kernel on the GPU gave a wrong result"
    except Exception as exc:
        return f"a test kernel failed on the GPU: {exc}"
    return None


class CupyBackend(Backend):
    """Backend whose arrays live on the current CUDA device."""

    def to_host(self, x: Any) -> np.ndarray:
        return x.get() if hasattr(x, "get") else np.asarray(x)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()


def cupy_backend(dtype: np.dtype, kernel_mode: str, seed: int | None) -> CupyBackend:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    memory_gib = props["totalGlobalMem"] / 2**30
    return CupyBackend("gpu", cupy, f"{name} ({memory_gib:.1f} GiB)", dtype, kernel_mode, seed)
