"""The CuPy backend's checks that run without a GPU: its kernels are tried before it is chosen (compile and launch
failures make "auto" fall back), the GPU a rank takes is CuPy's and Numba's current device, and ``xpnet info``
names the GPU software it finds or what is missing (CuPy, numba-cuda, the CUDA driver and runtime)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
from numba import config

from xpnet import DeviceError, backend, get_backend
from xpnet.backend_base import Unusable
from xpnet.backend_cupy import CupyBackend
from xpnet.cli import main

needs_simulator = pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="runs the CUDA kernels on host arrays: needs "
                                     "NUMBA_ENABLE_CUDASIM=1 (set by conftest when there is no GPU)")


class HostGpu(CupyBackend):
    """The CuPy backend on host arrays, on a machine that looks usable: its CUDA kernels run in Numba's simulator."""

    @classmethod
    def problem(cls) -> str | None:
        return None

    @classmethod
    def create(cls, dtype: np.dtype, kernel_mode: str, seed: int | None) -> CupyBackend:
        return cls.checked(np, "CUDA simulator", dtype, kernel_mode, seed)


@pytest.fixture
def host_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``HostGpu`` registered as "gpu", first in the registry as the real one is."""
    monkeypatch.setattr(backend, "BACKENDS", {**backend.BACKENDS, "gpu": HostGpu})
    monkeypatch.delenv("XPNET_DEVICE", raising=False)


def _fail(*args: object) -> None:
    raise RuntimeError("libnvvm.so: cannot open shared object file\n  (searched 3 places)")


@needs_simulator
@pytest.mark.parametrize("mode", ["fused", "reference"])
def test_the_kernels_are_compiled_and_tried_before_the_gpu_is_chosen(host_gpu, mode):
    chosen = get_backend("auto", "float64", seed=0, kernel_mode=mode)
    assert type(chosen) is HostGpu and chosen.notice is None
    assert type(chosen.kernels).__name__ == ("CudaKernels" if mode == "fused" else "ReferenceKernels")


@needs_simulator
@pytest.mark.parametrize("broken", ["compile", "sgd_update"])
def test_auto_falls_back_to_the_cpu_when_the_cuda_kernels_cannot_compile_or_launch(host_gpu, monkeypatch, broken):
    from xpnet.kernels.cuda_set import CudaKernels

    monkeypatch.setattr(CudaKernels, broken, staticmethod(_fail))
    chosen = get_backend("auto", "float32", seed=0)
    assert chosen.name == "cpu" and "\n" not in chosen.notice
    assert chosen.notice == ("no usable GPU (the fused kernels do not compile or run on the GPU (RuntimeError: "
                             "libnvvm.so: cannot open shared object file (searched 3 places)); --kernels reference "
                             "needs CuPy alone); training on the CPU")
    with pytest.raises(DeviceError, match=r"no GPU is usable: the fused kernels do not compile or run .*libnvvm"):
        get_backend("gpu")
    assert type(get_backend("gpu", kernel_mode="reference")) is HostGpu  # the reference kernels need no Numba


@needs_simulator
def test_a_wrong_result_of_the_test_update_is_a_problem_too(monkeypatch):
    from xpnet.kernels.cuda_set import CudaKernels

    monkeypatch.setattr(CudaKernels, "sgd_update", staticmethod(lambda p, g, lr: None))
    with pytest.raises(Unusable, match="the fused kernels gave a wrong result in a test update on the GPU"):
        HostGpu.create(np.dtype("float64"), "fused", 0)


def _fake_cupy(devices: int, driver: int = 12040, runtime: int = 12080) -> SimpleNamespace:
    """Enough of CuPy's module for device selection and version reports; ``used`` records ``Device(i).use()``."""
    used: list[int] = []
    runtime_api = SimpleNamespace(getDeviceCount=lambda: devices, driverGetVersion=lambda: driver,
                                  runtimeGetVersion=lambda: runtime)
    device = lambda index: SimpleNamespace(use=lambda: used.append(index))  # noqa: E731
    return SimpleNamespace(__version__="14.2.0", used=used, cuda=SimpleNamespace(runtime=runtime_api, Device=device))


def test_a_rank_takes_its_gpu_in_cupy_and_in_numba(monkeypatch):
    from numba import cuda

    cupy = _fake_cupy(devices=2)
    numba_devices: list[int] = []
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(cuda, "select_device", numba_devices.append)
    monkeypatch.setattr(CupyBackend, "problem", classmethod(lambda cls: None))
    backend.select_device("auto", 3)  # the fourth rank of a node with two GPUs shares the second
    assert cupy.used == [1] and numba_devices == [1]
    backend.select_device("cpu", 2)
    assert cupy.used == [1] and numba_devices == [1]


def test_without_a_usable_gpu_selecting_one_does_nothing(monkeypatch):
    monkeypatch.setattr(CupyBackend, "problem", classmethod(lambda cls: "no CUDA device found"))
    monkeypatch.setitem(sys.modules, "cupy", None)  # would fail if it were imported
    backend.select_device("gpu", 1)


def test_software_names_the_versions_found(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(devices=1))
    monkeypatch.setitem(sys.modules, "numba_cuda", SimpleNamespace(__version__="0.30.4"))
    assert CupyBackend.software() == {"CuPy": "14.2.0", "numba-cuda": "0.30.4", "CUDA driver": "12.4",
                                      "CUDA runtime": "12.8"}
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(devices=0, driver=0, runtime=13020))
    found = CupyBackend.software()
    assert found["CUDA driver"] == "not found (no NVIDIA driver installed)" and found["CUDA runtime"] == "13.2"


def test_info_names_what_is_missing_one_line_each(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(sys.modules, "numba_cuda", None)
    monkeypatch.delenv("XPNET_DEVICE", raising=False)
    assert main(["info"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines()[2:])
    install = "pip install 'xpnet[cuda12]' or 'xpnet[cuda13]'"
    assert lines["CuPy"].startswith(f"not installed: {install}")
    assert lines["numba-cuda"].startswith(f"not installed (Numba's deprecated built-in CUDA target stands in); "
                                          f"{install}")
    assert lines["CUDA driver"] == lines["CUDA runtime"] == "unknown (needs CuPy)"
    assert lines["gpu"].startswith("not usable (CuPy is not installed") and lines["cpu"].startswith("device ")
    assert lines["default device"] == "cpu"
