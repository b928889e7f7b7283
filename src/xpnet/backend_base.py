"""What every backend is: the base class the NumPy and CuPy backends (and any new one) fill in.

A backend carries everything device-specific for one run: the array module ``xp``, the dtype, a seeded random
generator, the kernel set, host<->device copies and synchronisation. Its class says, without being built, whether it
can run on this machine (``problem``), which device a rank of a node takes (``select_device``), which kernel set
each ``--kernels`` mode means (``kernel_set``), what software it found (``software``) and how often a training loop
reads values back (``readback_every``); an instance says how its arrays are summed over MPI ranks (``allreducer``).
``xpnet.backend`` holds the registry of backends by ``--device`` name; nothing else names a device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from xpnet.errors import DeviceError
from xpnet.kernels.sets import KernelSet, ReferenceKernels


class Unusable(Exception):
    """Raised by ``Backend.create``: the backend cannot run here; the message says why, on one line."""


def one_line(exc: BaseException) -> str:
    """An exception as one line of text: its type and its message with all whitespace runs made single spaces."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Backend(ABC):
    """Device, array module, dtype, RNG and kernels for one training or inference run."""

    name: ClassVar[str]
    """The registry key, as ``--device`` and ``get_backend(device=)`` take it ("cpu", "gpu")."""
    readback_every: ClassVar[int] = 1
    """Training steps between reads of the running loss back to the host (each read waits for the device)."""
    graph_runtime: ClassVar[type | None] = None
    """The class that records a training step once and replays it (``xpnet.graph_step.GraphRuntime``, made with the
    backend): ``CupyGraphs`` (its launches captured, the GPU), ``KernelReplay`` (its kernel calls, the CPU), or None
    (eager steps)."""
    host_threads: ClassVar[bool] = False
    """Whether its compute runs on this process's CPU threads (Numba and BLAS), which ``xpnet.threads`` and the
    thread governor then size."""
    inference_bytes: ClassVar[int] = 1 << 30
    """What the layers' buffers of one inference pass (predict, evaluate) may take: the rows per pass follow from it
    (``Model.inference_rows``), up to ``model.PREDICT_CHUNK``."""

    xp: ModuleType
    description: str
    """The device in words, for people: "x86_64 (2 cores)", "NVIDIA H200 (139.8 GiB)"."""
    dtype: np.dtype
    kernel_mode: str
    seed: int | None = None
    kernels: KernelSet = field(init=False)
    rng: np.random.Generator = field(init=False)
    notice: str | None = None
    """Why this backend was chosen when it differs from what was asked (auto fallback), else None."""

    def __post_init__(self) -> None:
        self.kernels = self.kernel_set(self.kernel_mode)()
        self.reseed(self.seed)

    # ------------------------------------------------------------------------------ what the class says
    @classmethod
    def problem(cls) -> str | None:
        """Why this backend cannot run on this machine, in a few words on one line, or None when it can.
        Cheap and side-effect free enough to call before choosing (it must not import Numba's CUDA target)."""
        return None

    @classmethod
    @abstractmethod
    def create(cls, dtype: np.dtype, kernel_mode: str, seed: int | None) -> Backend:
        """The backend on the current device; ``Unusable`` when it cannot run after all (its kernels do not compile
        or launch). Called only when ``problem()`` is None."""

    @classmethod
    @abstractmethod
    def fused_kernels(cls) -> type[KernelSet]:
        """The kernel-set class of ``--kernels fused`` on this backend."""

    @classmethod
    def kernel_set(cls, mode: str) -> type[KernelSet]:
        """The kernel-set class for ``mode``: the plain-``xp`` reference, which runs on every backend, or the
        backend's fused set."""
        return ReferenceKernels if mode == "reference" else cls.fused_kernels()

    @classmethod  # noqa: B027 (a no-op unless overridden, on purpose)
    def select_device(cls, local_rank: int) -> None:
        """Make the device of rank ``local_rank`` of a node the current one (one device per rank); nothing by default
        (one host for every rank), and nothing when the backend cannot run here."""

    @classmethod
    def software(cls) -> dict[str, str]:
        """The libraries and drivers this backend needs beyond NumPy and Numba: the version found, or what is missing
        and how to install it (for ``xpnet info``, one line each)."""
        return {}

    # --------------------------------------------------------------------------- what an instance does
    def allreducer(self, mpi_comm: Any, rank: int, size: int) -> Callable[[Any], None]:
        """A function summing one of this backend's arrays in place over the ranks of ``mpi_comm``. Here MPI's
        Allreduce, for arrays in host memory; a backend whose arrays live elsewhere overrides it (a collective then:
        every rank calls it)."""
        from mpi4py import MPI

        def allreduce_sum(array: Any) -> None:
            mpi_comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)

        return allreduce_sum

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

    def copy_from_host(self, out: Any, values: Any) -> None:
        """Copy host ``values`` into the device array ``out`` (same shape), in place: one host-to-device copy."""
        out[...] = values

    def synchronize(self) -> None:  # noqa: B027 (a no-op unless overridden, on purpose)
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
        return {"backend": self.name, "device": self.description, "dtype": str(self.dtype),
                "kernels": self.kernel_mode}
