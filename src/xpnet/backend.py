"""The one place that decides the device.

A ``Backend`` carries everything device-specific: the array module ``xp`` (NumPy or CuPy), the default dtype, a
seeded random generator, the kernel set, host<->device copies and synchronisation. Layers, losses, optimizers and
data pipelines take arrays from it and never import ``cupy`` themselves. The CuPy backend lives in
``backend_cupy`` and is imported only when a GPU is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from xpnet import kernels
from xpnet.errors import ConfigError, DeviceError
from xpnet.kernels.sets import KernelSet, load

DEVICE_ENV = "XPNET_DEVICE"
KERNELS_ENV = "XPNET_KERNELS"
DEVICES = ("auto", "cpu", "gpu")
DTYPES = ("float32", "float64")


@dataclass
class Backend:
    """Device, array module, dtype, RNG and kernels for one training or inference run."""

    name: str
    xp: ModuleType
    device: str
    dtype: np.dtype
    kernel_mode: str
    seed: int | None = None
    kernels: KernelSet = field(init=False)
    rng: np.random.Generator = field(init=False)
    notice: str | None = None
    """Why this backend was chosen when it differs from what was asked (auto fallback), else None."""

    def __post_init__(self) -> None:
        self.kernels = load(self.kernel_mode, self.name)
        self.reseed(self.seed)

    def reseed(self, seed: int | None) -> None:
        """Start a fresh random stream from ``seed``.

        The generator lives on the host: initial weights and shuffling orders are drawn there and copied over,
        so one seed gives the same model and the same batches on the CPU and on the GPU.
        """
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Copy host data to the device (no copy when it is already there with that dtype)."""
        return self.xp.asarray(x, dtype=dtype)

    def to_host(self, x: Any) -> np.ndarray:
        """Copy a device array to a NumPy array."""
        return np.asarray(x)

    def synchronize(self) -> None:
        """Wait for queued device work (nothing to wait for on the CPU)."""

    def empty(self, shape: Any, dtype: Any = None) -> Any:
        return self.xp.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def zeros(self, shape: Any, dtype: Any = None) -> Any:
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    @contextmanager
    def out_of_memory(self, batch_size: int) -> Iterator[None]:
        """Turn running out of memory inside the block into a DeviceError that names the batch size."""
        try:
            yield
        except MemoryError as exc:
            raise DeviceError(
                f"the {self.name.upper()} ran out of memory at batch size {batch_size} ({exc or 'no detail'}); "
                "use a smaller batch size, a smaller model, or less data",
                hint=f"try --batch-size {max(1, batch_size // 2)}",
            ) from exc

    def describe(self) -> dict[str, str]:
        """Facts about the device for ``xpnet info`` and benchmark records."""
        return {"backend": self.name, "device": self.device, "dtype": str(self.dtype), "kernels": self.kernel_mode}


def _cpu_description() -> str:
    import platform

    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def numpy_backend(dtype: np.dtype, kernel_mode: str, seed: int | None) -> Backend:
    return Backend("cpu", np, _cpu_description(), dtype, kernel_mode, seed)


def resolve_dtype(dtype: Any) -> np.dtype:
    """float32 (default, for None) or float64, as a NumPy dtype; anything else is a ConfigError."""
    try:
        resolved = np.dtype("float32" if dtype is None else dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ConfigError(f"unsupported dtype {dtype!r}: xpnet computes in float32 (default) or float64")
    return resolved


def resolve_kernel_mode(mode: str | None) -> str:
    mode = mode or os.environ.get(KERNELS_ENV) or "fused"
    if mode not in kernels.KERNEL_SETS:
        raise ConfigError(
            f"unknown kernel set {mode!r} (from argument or ${KERNELS_ENV}); "
            f"use one of {', '.join(kernels.KERNEL_SETS)}"
        )
    return mode


def get_backend(
    device: str | None = None,
    dtype: Any = "float32",
    seed: int | None = None,
    kernel_mode: str | None = None,
) -> Backend:
    """Build the backend for ``device`` ("auto", "cpu" or "gpu"; default: ``$XPNET_DEVICE`` or "auto").

    "auto" takes the GPU when CuPy imports, a device exists and a tiny kernel runs there; otherwise it falls back
    to the CPU and records why in ``backend.notice``. "gpu" without a usable GPU raises ``DeviceError``.
    """
    device = device or os.environ.get(DEVICE_ENV) or "auto"
    if device not in DEVICES:
        raise ConfigError(
            f"unknown device {device!r} (from argument or ${DEVICE_ENV}); use one of {', '.join(DEVICES)}"
        )
    resolved_dtype = resolve_dtype(dtype)
    mode = resolve_kernel_mode(kernel_mode)
    if device == "cpu":
        return numpy_backend(resolved_dtype, mode, seed)
    from xpnet import backend_cupy

    problem = backend_cupy.gpu_problem()
    if problem is None:
        return backend_cupy.cupy_backend(resolved_dtype, mode, seed)
    if device == "gpu":
        raise DeviceError(f"the GPU was asked for, but no GPU is usable: {problem}", hint="use --device cpu or auto")
    cpu = numpy_backend(resolved_dtype, mode, seed)
    cpu.notice = f"no usable GPU ({problem}); training on the CPU"
    return cpu
