"""The backend: device choice (argument, environment, auto fallback), dtype, kernel set, seeding, copies."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GPU_PROBLEM

from xpnet import ConfigError, DeviceError, get_backend


def test_cpu_backend_basics():
    backend = get_backend("cpu", "float64", seed=3)
    assert backend.name == "cpu" and backend.xp is np and backend.dtype == np.float64
    assert backend.zeros((2, 3)).dtype == np.float64 and backend.empty(4, dtype=np.int64).dtype == np.int64
    host = backend.to_host(backend.asarray([1.0, 2.0]))
    assert isinstance(host, np.ndarray) and host.tolist() == [1.0, 2.0]
    assert backend.describe()["backend"] == "cpu"
    backend.synchronize()
    assert type(backend.kernels).__name__ == "CpuKernels"


def test_float32_is_the_default():
    assert get_backend("cpu").dtype == np.float32


def test_same_seed_same_stream_and_reseed_restarts_it():
    a, b = get_backend("cpu", seed=5), get_backend("cpu", seed=5)
    first = a.rng.random(4)
    np.testing.assert_array_equal(first, b.rng.random(4))
    a.reseed(5)
    np.testing.assert_array_equal(a.rng.random(4), first)


def test_device_and_kernels_from_the_environment(monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "cpu")
    monkeypatch.setenv("XPNET_KERNELS", "reference")
    backend = get_backend()
    assert backend.name == "cpu" and backend.kernel_mode == "reference"
    assert type(backend.kernels).__name__ == "ReferenceKernels"
    monkeypatch.setenv("XPNET_KERNELS", "fastest")
    with pytest.raises(ConfigError, match="unknown kernel set 'fastest'.*XPNET_KERNELS"):
        get_backend()
    monkeypatch.setenv("XPNET_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'.*XPNET_DEVICE"):
        get_backend(kernel_mode="fused")


@pytest.mark.parametrize("dtype", ["float16", "int32", "nonsense"])
def test_unsupported_dtypes(dtype):
    with pytest.raises(ConfigError, match="unsupported dtype"):
        get_backend("cpu", dtype)


@pytest.mark.skipif(GPU_PROBLEM is None, reason="checks the fallback, which needs a machine without a usable GPU")
def test_auto_falls_back_to_the_cpu_with_a_one_line_reason_and_gpu_is_an_error():
    backend = get_backend("auto")
    assert backend.name == "cpu"
    assert backend.notice and "\n" not in backend.notice and GPU_PROBLEM in backend.notice
    with pytest.raises(DeviceError, match="no GPU is usable") as info:
        get_backend("gpu")
    assert info.value.exit_code == 2


@pytest.mark.gpu
def test_gpu_backend_round_trip():
    backend = get_backend("gpu", "float64", seed=1)
    assert backend.name == "gpu" and backend.notice is None
    device_array = backend.asarray(np.arange(5.0))
    assert type(device_array).__module__.startswith("cupy")
    np.testing.assert_array_equal(backend.to_host(device_array * 2), np.arange(5.0) * 2)
    assert type(backend.kernels).__name__ == "CudaKernels"
    assert get_backend("auto").name == "gpu"


def test_copy_from_host_fills_the_device_array_in_place():
    backend = get_backend("cpu", "float32", seed=0)
    out = backend.zeros(2, dtype=np.float64)
    before = out
    backend.copy_from_host(out, np.array([0.5, 7.0]))
    assert out is before and out.tolist() == [0.5, 7.0]
