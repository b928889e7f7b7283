"""The kernel sets, in the style of Thinc's ``Ops``: one name per kernel, one class per device.

Each set takes every kernel its variant's family modules define and the reference for the rest (see
``registry.KernelSet``): a kernel a fused set lacks is never missing, and never silently something else.
``CudaKernels`` lives in ``cuda_set.py`` and is imported only on the GPU. Which set a ``--kernels`` mode means on
a device is the backend's choice (``Backend.kernel_set``).
"""

from __future__ import annotations

from .registry import KernelSet


class ReferenceKernels(KernelSet, variant="reference"):
    """Plain ``xp`` code for every kernel: the definition the fused sets are tested against."""

    mode = "reference"


class CpuKernels(KernelSet, variant="cpu"):
    """Numba CPU kernels: each elementwise step fused into one pass over memory."""

    mode = "fused"

