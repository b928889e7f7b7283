"""The CuPy (CUDA GPU) backend: the only module of xpnet that imports ``cupy`` (always inside functions)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from xpnet.backend import Backend
from xpnet.errors import DeviceError


def gpu_problem() -> str | None:
    """Why the GPU cannot be used, in a few words, or None when CuPy, a device and a tiny kernel all work."""
    try:
        import cupy
    except ImportError as exc:
        return (
            f"CuPy is not installed ({exc}); install it with pip install 'xpnet[cuda12]' or 'xpnet[cuda13]'"
        )
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


def _cuda_version(number: int) -> str:
    """CUDA's integer version (12040) as text ("12.4")."""
    return f"{number // 1000}.{number % 1000 // 10}"


def _bytes(nbytes: int) -> str:
    """A byte count for people: 1.5 GiB, 20.0 MiB, 512 bytes."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"


def out_of_memory_message(batch_size: int, nbytes: int) -> str:
    """The advice for a step at ``batch_size`` whose request for ``nbytes`` (0: unknown) the GPU refused."""
    asked = f"{_bytes(nbytes)} ({nbytes:,} bytes)" if nbytes > 0 else "memory"
    return (
        f"the GPU ran out of memory at batch size {batch_size}: it could not allocate {asked}. "
        "Use a smaller batch size, a smaller model, or the CPU."
    )


@contextmanager
def translate_out_of_memory(batch_size: int) -> Iterator[None]:
    """Turn CuPy's ``OutOfMemoryError`` inside the block into a ``DeviceError`` that names the batch size."""
    import cupy

    try:
        yield
    except cupy.cuda.memory.OutOfMemoryError as exc:
        # CuPy keeps only its message: "Out of memory allocating 1,234 bytes (allocated so far: ...)"
        found = re.search(r"allocating ([\d,]+) bytes", str(exc))
        nbytes = int(found.group(1).replace(",", "")) if found else 0
        raise DeviceError(out_of_memory_message(batch_size, nbytes),
                          hint=f"try --batch-size {max(1, batch_size // 2)} or --device cpu") from exc


class CupyBackend(Backend):
    """Backend whose arrays live on the current CUDA device."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_mode == "fused":
            # Compile up front, for this dtype's explicit signatures: a broken Numba/CUDA setup fails here,
            # with advice, rather than in the middle of the first training step.
            try:
                self.kernels.compile(self.dtype)
            except Exception as exc:
                raise DeviceError(
                    f"Numba could not compile the fused CUDA kernels ({exc}); "
                    "use the reference kernels (CuPy only) or the CPU", hint="try --kernels reference or --device cpu"
                ) from exc

    def out_of_memory(self, batch_size: int) -> Any:
        return translate_out_of_memory(batch_size)

    def to_host(self, x: Any) -> np.ndarray:
        return x.get() if hasattr(x, "get") else np.asarray(x)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def describe(self) -> dict[str, str]:
        """The base facts plus GPU name and memory, CUDA runtime and driver, CuPy and Numba versions."""
        import cupy
        import numba

        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        free, total = device.mem_info
        capability = device.compute_capability  # "90" for 9.0
        return {
            **super().describe(),
            "gpu": _device_name(props),
            "gpu_memory": f"{_bytes(total)} ({_bytes(free)} free)",
            "compute_capability": f"{capability[:-1]}.{capability[-1]}",
            "cuda_runtime": _cuda_version(cupy.cuda.runtime.runtimeGetVersion()),
            "cuda_driver": _cuda_version(cupy.cuda.runtime.driverGetVersion()),
            "cupy": cupy.__version__,
            "numba": numba.__version__,
        }


def _device_name(props: dict[str, Any]) -> str:
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def cupy_backend(dtype: np.dtype, kernel_mode: str, seed: int | None) -> CupyBackend:
    """The GPU backend on CuPy's current device."""
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    memory_gib = props["totalGlobalMem"] / 2**30
    return CupyBackend("gpu", cupy, f"{_device_name(props)} ({memory_gib:.1f} GiB)", dtype, kernel_mode, seed)


def select_device(local_rank: int) -> None:
    """Make GPU ``local_rank`` (modulo the node's GPU count) CuPy's current device: one GPU per rank of a node.
    Nothing happens without a usable GPU (the backend then decides, as for one process)."""
    if gpu_problem() is None:
        import cupy

        cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()


def nccl_sum(mpi_comm: Any, rank: int, size: int) -> Any:
    """A function summing a CuPy array in place over the ranks of ``mpi_comm`` with NCCL, on CuPy's current
    stream; rank 0 makes NCCL's unique id and MPI broadcasts it (a collective: every rank calls this)."""
    import cupy
    from cupy.cuda import nccl

    uid = nccl.get_unique_id() if rank == 0 else None
    comm = nccl.NcclCommunicator(size, mpi_comm.bcast(uid, root=0), rank)
    types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce_sum(array: Any) -> None:
        stream = cupy.cuda.get_current_stream().ptr
        comm.allReduce(array.data.ptr, array.data.ptr, array.size, types[array.dtype], nccl.NCCL_SUM, stream)

    return allreduce_sum
