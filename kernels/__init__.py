"""Fused kernels, grouped in families, with a plain array-module reference beside every one.

Layout: one subpackage per family of kernels, each holding the three versions side by side::

    kernels/<family>/__init__.py   the family's argument checks (and constants it shares)
    kernels/<family>/reference.py  plain ``xp`` code (NumPy or CuPy): the definition of each kernel; every kernel
                                   is declared here, once, with ``@kernel(check=...)`` (``registry.py``)
    kernels/<family>/cpu.py        Numba ``njit`` versions that fuse each step into one pass over memory
    kernels/<family>/cuda.py       Numba CUDA versions for CuPy arrays; each device kernel declares its signature
                                   beside its body with ``@cuda_kernel(...)`` (``numba_cuda.py``)

Families: activations, losses, optimizers, gather, windows (im2col/col2im), products (a layer's weight gradient
where the BLAS splits it badly), convolution (a Conv2D layer's windows and products, block by block of images on
the CPU), pooling (max and average pools, and a max pool fused with the activation after it),
dropout (dropout and random shifts), batchnorm, hue, and finite (NaN and infinite entries of input data). The kernel
names are derived from the ``@kernel`` registrations; a fused module implements a kernel by defining a function of
the same name. ``sets.py`` builds the kernel sets from them: ``ReferenceKernels``, ``CpuKernels`` and
``CudaKernels`` (``cuda_set.py``, loaded only on the GPU). A kernel's argument check runs once, at the set's
boundary, whichever version runs; a kernel that a fused set lacks falls back to the reference. ``numba_cpu.py`` and
``numba_cuda.py`` hold what every family's CPU and CUDA versions share (compile options, launching), ``scalar.py``
the per-element math written once and compiled for both devices.

Adding a kernel: declare it in its family's ``reference.py`` (``@kernel(check=...)``, the check in the family's
``__init__.py`` taking the kernel's arguments); define a function of the same name in ``cpu.py`` and/or ``cuda.py``
(device kernels with ``@cuda_kernel(lambda t: void(...))`` beside their bodies, launched with ``.launch``); add a
case to ``tests/kernels/test_conformance.py`` and ``benchmarks/kernels.py`` (both check that every declared kernel
has one). A new family is a new subpackage with the same files, found by ``registry.families()`` (list it in
pyproject.toml's ``packages``).

Every kernel writes into output arrays it is given and returns nothing, so callers can preallocate (hue histograms
excepted: they return new counts). Losses accumulate ``stats[0] += sum of per-sample losses`` and
``stats[1] += number of correct samples`` so that a training loop never reads a scalar back on every step.
Convolutional kernels work on NHWC (channels-last) images; batch normalisation on (rows, channels) matrices.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5

ACTIVATIONS: dict[str, int] = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}

KERNEL_SETS = ("fused", "reference")


def array_module(x) -> ModuleType:
    """The array module (numpy or cupy) that owns ``x``, found without importing cupy here."""
    return importlib.import_module(type(x).__module__.split(".")[0])


def as_rows(a):
    """``a`` as a (rows, last axis) matrix in C order (a 0-d array as 1 x 1): a view of a C-contiguous ``a``, a
    copy of any other (NumPy or CuPy). Element (r, k) is flat C-order element r * a.shape[-1] + k of ``a``."""
    return a.reshape((math.prod(a.shape[:-1]), a.shape[-1]) if a.ndim else (1, 1))
