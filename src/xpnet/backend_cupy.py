"""The CuPy (CUDA GPU) backend: the only module of xpnet that imports ``cupy`` (always inside functions)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from xpnet.backend_base import Backend, Unusable, one_line
from xpnet.errors import DeviceError
from xpnet.graph_step import CupyGraphs
from xpnet.kernels.sets import KernelSet

INSTALL = "pip install 'xpnet[cuda12]' or 'xpnet[cuda13]' (the driver's CUDA major version)"


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


def _device_name(props: dict[str, Any]) -> str:
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _cuda_versions() -> dict[str, str]:
    """The CUDA driver and runtime versions CuPy finds, or why it finds none."""
    try:
        import cupy
    except ImportError:
        return {"CUDA driver": "unknown (needs CuPy)", "CUDA runtime": "unknown (needs CuPy)"}
    found = {}
    for what, read in (("CUDA driver", cupy.cuda.runtime.driverGetVersion),
                       ("CUDA runtime", cupy.cuda.runtime.runtimeGetVersion)):
        try:
            number = read()
        except Exception as exc:  # CuPy raises CUDARuntimeError subclasses that vary by version
            found[what] = f"not found ({one_line(exc)})"
        else:
            found[what] = _cuda_version(number) if number else "not found (no NVIDIA driver installed)"
    return found


class CupyBackend(Backend):
    """Backend whose arrays live on the current CUDA device; fused kernels are Numba CUDA kernels, launched on the
    device CuPy and Numba share (Numba works in the CUDA context CuPy made current)."""

    name = "gpu"
    readback_every = 50  # each read of the running loss waits for the queued steps: read it now and then
    graph_runtime = CupyGraphs

    @classmethod
    def problem(cls) -> str | None:
        """Why the GPU cannot be used, in a few words, or None when CuPy, a device and a tiny kernel all work."""
        try:
            import cupy
        except ImportError as exc:
            return f"CuPy is not installed ({exc}); install it with {INSTALL}"
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CuPy raises CUDARuntimeError subclasses that vary by version
            return f"CUDA driver error: {one_line(exc)}"
        if count == 0:
            return "no CUDA device found"
        try:
            probe = cupy.arange(8, dtype=cupy.float32)
            if float((probe * 2).sum()) != 56.0:
                return "a test kernel on the GPU gave a wrong result"
        except Exception as exc:
            return f"a test kernel failed on the GPU: {one_line(exc)}"
        return None

    @classmethod
    def create(cls, dtype: np.dtype, kernel_mode: str, seed: int | None) -> CupyBackend:
        """The GPU backend on CuPy's current device, its kernels compiled and tried there."""
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        description = f"{_device_name(props)} ({props['totalGlobalMem'] / 2**30:.1f} GiB)"
        return cls.checked(cupy, description, dtype, kernel_mode, seed)

    @classmethod
    def checked(cls, xp: Any, description: str, dtype: np.dtype, kernel_mode: str, seed: int | None) -> CupyBackend:
        """The backend on ``xp``'s arrays, after its kernels compiled for ``dtype`` and ran one update correctly:
        a Numba/CUDA setup that cannot compile or launch them is ``Unusable`` here, before training, rather than
        an error in the first step."""
        try:
            backend = cls(xp, description, dtype, kernel_mode, seed)
            backend.kernels.compile(dtype)
            params, grads = backend.xp.ones(8, dtype=dtype), backend.xp.arange(8, dtype=dtype)
            backend.kernels.sgd_update(params, grads, 0.5)
            right = np.allclose(backend.to_host(params), 1.0 - 0.5 * np.arange(8))
        except Exception as exc:  # whatever Numba's CUDA target raises: import, NVVM, PTX, driver, launch errors
            raise Unusable(f"the {kernel_mode} kernels do not compile or run on the GPU ({one_line(exc)}); "
                           "--kernels reference needs CuPy alone") from exc
        if not right:
            raise Unusable(f"the {kernel_mode} kernels gave a wrong result in a test update on the GPU")
        return backend

    @classmethod
    def fused_kernels(cls) -> type[KernelSet]:
        from xpnet.kernels.cuda_set import CudaKernels

        return CudaKernels

    @classmethod
    def select_device(cls, local_rank: int) -> None:
        """Make GPU ``local_rank`` (modulo the node's GPU count) the current device of CuPy and of Numba: one GPU per
        rank of a node. Nothing happens without a usable GPU (the backend then decides, as for one process)."""
        if cls.problem() is not None:
            return
        import cupy

        index = local_rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(index).use()
        # a Numba CUDA target that cannot start is reported when the backend is made, with the fallback that applies
        with contextlib.suppress(Exception):
            from numba import cuda

            cuda.select_device(index)

    @classmethod
    def software(cls) -> dict[str, str]:
        """CuPy, numba-cuda (NVIDIA's home of Numba's CUDA target) and the CUDA driver and runtime."""
        try:
            import cupy

            found = {"CuPy": cupy.__version__}
        except ImportError:
            found = {"CuPy": f"not installed: {INSTALL}"}
        try:
            import numba_cuda

            found["numba-cuda"] = numba_cuda.__version__
        except ImportError:
            found["numba-cuda"] = f"not installed (Numba's deprecated built-in CUDA target stands in); {INSTALL}"
        return {**found, **_cuda_versions()}

    def allreducer(self, mpi_comm: Any, rank: int, size: int) -> Callable[[Any], None]:
        """NCCL's sum in place over the ranks of ``mpi_comm``, on CuPy's current stream; rank 0 makes NCCL's unique
        id and MPI broadcasts it (a collective: every rank calls this)."""
        import cupy
        from cupy.cuda import nccl

        uid = nccl.get_unique_id() if rank == 0 else None
        comm = nccl.NcclCommunicator(size, mpi_comm.bcast(uid, root=0), rank)
        types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

        def allreduce_sum(array: Any) -> None:
            stream = cupy.cuda.get_current_stream().ptr
            comm.allReduce(array.data.ptr, array.data.ptr, array.size, types[array.dtype], nccl.NCCL_SUM, stream)

        return allreduce_sum

    def out_of_memory(self, batch_size: int) -> Any:
        return translate_out_of_memory(batch_size)

    def to_host(self, x: Any) -> np.ndarray:
        return x.get() if hasattr(x, "get") else np.asarray(x)

    def copy_from_host(self, out: Any, values: Any) -> None:
        out.set(np.ascontiguousarray(values, dtype=out.dtype))  # CuPy 14 refuses host arrays in item assignment

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
