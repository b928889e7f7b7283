"""The registry of backends: "auto" takes the first usable one and says why it passed others over; a named one that
cannot run is a DeviceError naming the problem; every backend names its kernel sets and its read-back cadence."""

from __future__ import annotations

import numpy as np
import pytest
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

from xpnet import DeviceError, backend, get_backend
from xpnet.backend_base import Unusable
from xpnet.backend_cupy import CupyBackend
from xpnet.backend_numpy import NumpyBackend
from xpnet.builders import mlp


class Broken(NumpyBackend):
    """A backend that never runs here, for the registry's sake."""

    name = "broken"

    @classmethod
    def problem(cls) -> str | None:
        return "the broken device is unplugged"


class FailsToCreate(NumpyBackend):
    """A backend whose machine looks fine but whose kernels fail when it is made."""

    name = "flaky"

    @classmethod
    def create(cls, dtype: np.dtype, kernel_mode: str, seed: int | None) -> NumpyBackend:
        raise Unusable("its kernels do not compile")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, type[backend.Backend]]:
    """``BACKENDS`` with the two failing backends tried before the real ones."""
    entries = {"broken": Broken, "flaky": FailsToCreate, **backend.BACKENDS}
    monkeypatch.setattr(backend, "BACKENDS", entries)
    monkeypatch.delenv("XPNET_DEVICE", raising=False)
    return entries


def test_auto_passes_over_unusable_backends_with_a_one_line_notice(registry):
    chosen = get_backend("auto", "float64", seed=1)
    assert chosen.name in registry and chosen.name not in ("broken", "flaky")
    notice = chosen.notice
    assert notice is not None and "\n" not in notice
    assert notice.startswith("no usable BROKEN (the broken device is unplugged); no usable FLAKY (its kernels do not "
                             "compile);")
    assert notice.endswith(f"training on the {chosen.name.upper()}")


def test_a_named_backend_that_cannot_run_is_an_error_naming_its_problem(registry):
    for name, problem in (("broken", "the broken device is unplugged"), ("flaky", "its kernels do not compile")):
        with pytest.raises(DeviceError, match=f"the {name.upper()} was asked for, but no {name.upper()} is usable: "
                                              f"{problem}") as info:
            get_backend(name)
        assert info.value.exit_code == 2 and info.value.hint.endswith("or cpu or auto")


def test_unknown_devices_are_refused_with_the_registered_names(registry):
    with pytest.raises(Exception, match="unknown device 'tpu'.*use one of auto, broken, cpu, flaky, gpu"):
        get_backend("tpu")


def test_the_registry_ends_with_the_cpu_which_always_runs():
    assert list(backend.BACKENDS)[-1] == "cpu" and backend.BACKENDS["cpu"].problem() is None
    assert all(cls.name == name for name, cls in backend.BACKENDS.items())
    assert ("auto", *sorted(backend.BACKENDS)) == backend.DEVICES


def test_each_backend_names_its_kernel_sets():
    from xpnet.kernels.cuda_set import CudaKernels  # the simulator's, without a GPU (conftest)

    for cls, fused in ((NumpyBackend, CpuKernels), (CupyBackend, CudaKernels)):
        assert cls.kernel_set("reference") is ReferenceKernels and cls.kernel_set("fused") is fused


class Counting(NumpyBackend):
    """The CPU backend, counting the reads of the training loop's running totals (two float64 values)."""

    reads = 0

    def to_host(self, x):
        if x.shape == (2,) and x.dtype == np.float64:
            type(self).reads += 1
        return super().to_host(x)


@pytest.mark.parametrize(("every", "reads"), [(1, 10), (4, 3)])
def test_training_reads_values_back_as_often_as_the_backend_says(monkeypatch, every, reads):
    monkeypatch.setattr(Counting, "readback_every", every)
    monkeypatch.setattr(Counting, "reads", 0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    model = mlp([3, 4, 2], "relu", optimizer="sgd", lr=0.1, backend=Counting.create(np.dtype("float64"), "fused", 0))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # 10 steps: read at 4, 8 and the last
    assert Counting.reads == reads
