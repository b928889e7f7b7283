"""What every family's Numba CUDA kernels share: the device-kernel registry, compiling and launching.

A family's ``cuda.py`` declares each device kernel with ``@cuda_kernel(signature)`` beside its body, where
``signature`` maps the element type (float32 or float64) to the kernel's one signature (arrays of any layout).
Every declared kernel is compiled at once on the first launch for a dtype, or earlier through
``compile_kernels``. A kernel compiled for exactly one signature launches without typing its arguments, most of
Numba's per-launch cost. Scalars are passed as the arrays' dtype, so float32 work stays in float32.

Kernels work on CuPy arrays in place, without copies, and are launched on CuPy's current stream, so they queue
up behind the CuPy work that made their inputs and never make the host wait. NumPy arrays work too (the tests use
them under ``NUMBA_ENABLE_CUDASIM=1``): Numba copies each one to the device and back after the launch. Arguments
that may alias (``dz`` and ``da``) are ordered so that the output is copied back last and wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import config, cuda, float32, float64
from numba.core.types import Array, Float

from . import array_module

THREADS_PER_BLOCK = 32 if config.ENABLE_CUDASIM else 256
"""Threads per block (few under the simulator, which runs every thread as a Python thread)."""

MAX_BLOCKS = 4 if config.ENABLE_CUDASIM else 4096
"""Most blocks per launch; grid-stride loops cover the rest."""

# Numba checks every launch configuration for a grid of under 128 blocks and warns (numba/cuda/dispatcher.py,
# _LaunchConfiguration). A batch of 128 rows is a one-block grid by nature, not a mistake: the check and the
# warning only add host time to every launch.
config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

FLOAT_TYPES: dict[np.dtype, Float] = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}


@cuda.jit(device=True)
def row_reduce(shared, row, lane, value, maximum):
    """The maximum (else the sum) of ``value`` over the lanes of row ``row`` of ``shared`` (its width, a power of
    two, is the lane count), by a fixed tree, so that every run adds in the same order; every lane gets it. Every
    thread of the block calls this together (it synchronises them). A block-wide sum is the one-row case."""
    shared[row, lane] = value
    cuda.syncthreads()
    half = shared.shape[1] // 2
    while half > 0:
        if lane < half:
            other = shared[row, lane + half]
            if maximum:
                if other > shared[row, lane]:
                    shared[row, lane] = other
            else:
                shared[row, lane] += other
        cuda.syncthreads()
        half //= 2
    result = shared[row, 0]
    cuda.syncthreads()  # every lane has read it before shared is written again
    return result


def array(t: Any, ndim: int) -> Array:
    """The type of an ``ndim``-dimensional array of ``t`` in any layout (for ``cuda_kernel`` signatures)."""
    return Array(t, ndim, "A")


class CudaKernel:
    """A Python function to compile as a CUDA kernel, with its signature for each element type."""

    def __init__(self, func: Callable[..., None], signature: Callable[[Float], Any]) -> None:
        self.func = func
        self.signature = signature
        self.name = func.__name__.lstrip("_")

    def launch(self, work: int, arrays: tuple, scalars: tuple = (), tail: Any = None) -> None:
        """Run over ``work`` items for the dtype ``arrays`` share, then ``tail`` (an array or a tuple of arrays of
        other dtypes, pre-checked)."""
        dtype = arrays[0].dtype
        for x in arrays:
            if x.dtype != dtype:
                raise TypeError(f"CUDA kernel {self.name}: arrays mix {dtype} and {x.dtype}; all must have one dtype")
        if tail is not None:
            arrays = (*arrays, *(tail if isinstance(tail, tuple) else (tail,)))
        compiled = _compiled.get(dtype, {}).get(self.name)
        if compiled is None:
            compiled = compile_kernels(dtype)[self.name]
        blocks = min(MAX_BLOCKS, max(1, -(-work // THREADS_PER_BLOCK)))
        if isinstance(arrays[0], np.ndarray):
            compiled[blocks, THREADS_PER_BLOCK](*arrays, *scalars)
            return
        import cupy

        stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
        compiled[blocks, THREADS_PER_BLOCK, stream](*map(VIEWS.view, arrays), *scalars)


def device_array(x: Any) -> Any:
    """A Numba view of the CuPy array ``x``'s memory, made without waiting for its stream (a launch is queued on
    the stream that made its inputs) and holding no reference to ``x``: the caller keeps ``x`` alive while the
    view is used, as CuPy keeps memory alive for work queued on its stream. (Passing a CuPy array to a kernel
    directly makes Numba wrap it with ``sync=True``: one stream synchronisation per argument, and an error while
    a graph is captured.)"""
    return cuda.from_cuda_array_interface(x.__cuda_array_interface__, owner=None, sync=False)


class ViewCache:
    """Numba device-array views of CuPy arrays, made once per buffer and reused on every later launch.

    ``cuda.as_cuda_array`` reads the array's ``__cuda_array_interface__`` and builds a new device array on every
    call: microseconds of host time per argument, per launch. A step's arrays are the model's preallocated
    buffers, so the view of a buffer is looked up by what defines it (data pointer, shape, strides, dtype): a
    different array at the same address with the same layout is the same memory seen the same way, so its
    cached view is right for it too. Views hold no reference to their arrays (``device_array``), so caching one
    keeps no memory alive; the least recently used views beyond ``size`` are dropped (transient scratch arrays
    come and go)."""

    def __init__(self, wrap: Callable[[Any], Any] = device_array, size: int = 512) -> None:
        self.wrap, self.size = wrap, size
        self.views: dict[tuple, Any] = {}

    def view(self, x: Any) -> Any:
        """The device-array view of ``x``, made by ``wrap`` on first sight of its memory and layout."""
        key = (x.data.ptr, x.shape, x.strides, x.dtype.str)
        found = self.views.pop(key, None)
        if found is None:
            found = self.wrap(x)
            if len(self.views) >= self.size:
                del self.views[next(iter(self.views))]
        self.views[key] = found  # re-inserted: the dict's order is the order of last use
        return found


VIEWS = ViewCache()
"""The views every CUDA launch of a CuPy array goes through."""


CUDA_KERNELS: dict[str, CudaKernel] = {}
"""Every declared device kernel by name (the function's, without its leading underscore)."""


def cuda_kernel(signature: Callable[[Float], Any]) -> Callable[[Callable[..., None]], CudaKernel]:
    """Declare the decorated function a CUDA kernel with ``signature(t)`` for element type ``t``."""

    def register(func: Callable[..., None]) -> CudaKernel:
        declared = CudaKernel(func, signature)
        if declared.name in CUDA_KERNELS:
            raise ImportError(f"CUDA kernel {declared.name} is declared twice")
        CUDA_KERNELS[declared.name] = declared
        return declared

    return register


_compiled: dict[np.dtype, dict[str, Any]] = {}


def compile_kernels(dtype: Any) -> dict[str, Any]:
    """Compile (once) every declared kernel for ``dtype`` (float32 or float64) and return them by name (kernels
    declared since the last call, by a family imported later, are compiled on the next)."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_TYPES:
        raise TypeError(f"CUDA kernels compute in float32 or float64, not {dtype}")
    compiled = _compiled.setdefault(dtype, {})
    for name, declared in CUDA_KERNELS.items():
        if name not in compiled:
            compiled[name] = cuda.jit(declared.signature(FLOAT_TYPES[dtype]), cache=True)(declared.func)
    return compiled


def require(name: str, label: str, x: Any, dtype: Any) -> None:
    """Refuse an array of the wrong dtype: a kernel compiled for one signature would misread it."""
    if x.dtype != dtype:
        raise TypeError(f"CUDA kernel {name}: {label} must be {np.dtype(dtype)}, not {x.dtype}")


def contiguous_output(a: Any) -> Any:
    """``a`` itself when C-contiguous (so ``as_rows`` is a view of it), else C-contiguous scratch to copy back."""
    return a if a.flags.c_contiguous else array_module(a).empty(a.shape, a.dtype)


def write_back(a: Any, result: Any) -> None:
    """Copy ``result`` into ``a`` when ``contiguous_output`` gave scratch for it."""
    if result is not a:
        a[...] = result
