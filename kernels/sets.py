"""Kernel sets as classes, in the style of Thinc's ``Ops``: one name per kernel, per-device overrides.

``ReferenceKernels`` is the base: every kernel as plain array code (``reference.py``), on NumPy or CuPy. The fused
sets subclass it and override the kernels their module defines: ``CpuKernels`` (Numba ``njit``, ``cpu.py``) here,
``CudaKernels`` (Numba CUDA, ``cuda.py``) beside its kernels, imported only on the GPU. A kernel that a fused module
lacks falls back to the reference by inheritance: it is never missing, and never silently something else.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

from . import KERNEL_FUNCTIONS, cpu, hue, reference


class KernelSet:
    """Base of the kernel sets; a subclass names the module whose functions override its parent's."""

    mode: ClassVar[str] = ""
    device: ClassVar[str] = ""
    overridden: ClassVar[frozenset[str]] = frozenset()
    """The kernels this set's own module implements (the rest are inherited)."""

    def __init_subclass__(cls, implementations: ModuleType | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if implementations is None:
            return
        own = {name for name in KERNEL_FUNCTIONS if callable(vars(implementations).get(name))}
        for name in own:
            setattr(cls, name, staticmethod(getattr(implementations, name)))
        cls.overridden = frozenset(own | {n for n in vars(cls) if n in KERNEL_FUNCTIONS or n == "hue_histograms"})

    def compile(self, dtype: Any) -> None:
        """Compile every kernel for ``dtype`` ahead of the first step (nothing to do for most sets)."""

    def implementation(self, name: str) -> str:
        """Which set provides kernel ``name``: this one, or the reference it falls back to."""
        return self.mode if name in self.overridden else ReferenceKernels.mode

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ReferenceKernels(KernelSet, implementations=reference):
    """Plain ``xp`` code for every kernel: the definition the fused sets are tested against."""

    mode = "reference"
    device = "any"
    hue_histograms = staticmethod(hue.hue_histograms_reference)


missing = [name for name in KERNEL_FUNCTIONS if name not in ReferenceKernels.overridden]
if missing:  # the base must define everything that the others may fall back to
    raise ImportError(f"reference.py lacks the kernels {missing}")
del missing


class CpuKernels(ReferenceKernels, implementations=cpu):
    """Numba CPU kernels: each elementwise step fused into one pass over memory."""

    mode = "fused"
    device = "cpu"
    hue_histograms = staticmethod(hue.hue_histograms_cpu)


def load(mode: str, device: str) -> KernelSet:
    """The kernel set for ``mode`` ("fused" or "reference") on ``device`` ("cpu" or "gpu")."""
    if mode == "reference":
        return ReferenceKernels()
    if mode == "fused":
        if device == "gpu":
            from .cuda import CudaKernels

            return CudaKernels()
        return CpuKernels()
    raise ValueError(f"unknown kernel mode {mode!r}; expected 'fused' or 'reference'")
