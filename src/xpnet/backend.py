"""The one place that decides the device: the registry of backends and ``get_backend``.

Each backend is a class (``backend_base.Backend``): ``backend_numpy.NumpyBackend`` ("cpu") and
``backend_cupy.CupyBackend`` ("gpu", importing ``cupy`` only inside its methods). ``BACKENDS`` maps each
``--device`` name to its class, most preferred first; "auto" takes the first that can run here. Layers, losses,
optimizers and data pipelines take arrays from the backend object and never import ``cupy`` themselves; other
modules ask the backend (``readback_every``, ``allreducer``, ``select_device``...) and never compare device names.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from xpnet.backend_base import Backend, Unusable
from xpnet.backend_cupy import CupyBackend
from xpnet.backend_numpy import NumpyBackend
from xpnet.errors import ConfigError, DeviceError
from xpnet.kernels import KERNEL_SETS

DEVICE_ENV = "XPNET_DEVICE"
KERNELS_ENV = "XPNET_KERNELS"
AUTO = "auto"
BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (CupyBackend, NumpyBackend)}
"""Every backend by its ``--device`` name, in the order "auto" tries them (the CPU last: it always runs)."""
DEVICES = (AUTO, *sorted(BACKENDS))
DTYPES = ("float32", "float64")


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
    if mode not in KERNEL_SETS:
        raise ConfigError(
            f"unknown kernel set {mode!r} (from argument or ${KERNELS_ENV}); "
            f"use one of {', '.join(KERNEL_SETS)}"
        )
    return mode


def resolve_device(device: str | None) -> str:
    """``device``, or ``$XPNET_DEVICE``, or "auto": "auto" or a name in ``BACKENDS`` (anything else: ConfigError)."""
    device = device or os.environ.get(DEVICE_ENV) or AUTO
    if device != AUTO and device not in BACKENDS:
        raise ConfigError(f"unknown device {device!r} (from argument or ${DEVICE_ENV}); "
                          f"use one of {', '.join((AUTO, *sorted(BACKENDS)))}")
    return device


def _candidates(device: str) -> list[type[Backend]]:
    """The backend classes a resolved ``device`` may become, in the order they are tried."""
    return list(BACKENDS.values()) if device == AUTO else [BACKENDS[device]]


def open_backend(cls: type[Backend], dtype: np.dtype, kernel_mode: str, seed: int | None) -> Backend | str:
    """The backend of class ``cls``, or why it cannot run here."""
    problem = cls.problem()
    if problem is not None:
        return problem
    try:
        return cls.create(dtype, kernel_mode, seed)
    except Unusable as exc:
        return str(exc)


def get_backend(
    device: str | None = None,
    dtype: Any = "float32",
    seed: int | None = None,
    kernel_mode: str | None = None,
) -> Backend:
    """Build the backend for ``device`` ("auto" or a name in ``BACKENDS``: "cpu", "gpu"; default:
    ``$XPNET_DEVICE`` or "auto").

    "auto" takes the first backend that can run here (the GPU when CuPy imports, a device exists and the kernels
    compile and run there); when it passes one over it records why, in one line, in ``backend.notice``. A named
    backend that cannot run raises ``DeviceError`` naming the problem.
    """
    device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype)
    mode = resolve_kernel_mode(kernel_mode)
    passed_over = []
    for cls in _candidates(device):
        label = cls.name.upper()
        opened = open_backend(cls, resolved_dtype, mode, seed)
        if isinstance(opened, Backend):
            if passed_over:
                opened.notice = f"{'; '.join(passed_over)}; training on the {label}"
            return opened
        if device != AUTO:
            others = " or ".join([name for name in BACKENDS if name != device] + [AUTO])
            raise DeviceError(f"the {label} was asked for, but no {label} is usable: {opened}",
                              hint=f"use --device {others}")
        passed_over.append(f"no usable {label} ({opened})")
    raise DeviceError(f"no device is usable: {'; '.join(passed_over)}")


def select_device(device: str | None, local_rank: int) -> None:
    """Before ``get_backend(device)`` in rank ``local_rank`` of a node: make each backend ``device`` may resolve to
    take that rank's device (one GPU per rank)."""
    for cls in _candidates(resolve_device(device)):
        cls.select_device(local_rank)
