"""The Numba CUDA kernels equal the plain-xp reference kernels.

Without a GPU the conftest turns on Numba's CUDA simulator, and the kernels run on NumPy arrays (sizes kept
small: the simulator runs every GPU thread as a Python thread). The ``gpu``-marked tests repeat the
comparisons on CuPy arrays on a real device, at larger sizes, with non-contiguous arrays and on a
non-default stream.
"""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from xpnet.kernels import ACTIVATIONS, SOFTMAX
from xpnet.kernels.activations import cuda as activations_cuda
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.numba_cuda import MAX_BLOCKS, THREADS_PER_BLOCK, _compiled, compile_kernels
from xpnet.kernels.sets import ReferenceKernels

from xpnet.backend_cupy import out_of_memory_message, translate_out_of_memory
from xpnet.errors import DeviceError

fused = CudaKernels()
reference = ReferenceKernels()

DTYPES = (np.float32, np.float64)
SIM_SHAPES = ((1, 1), (7, 3), (33, 10))
GPU_SHAPES = ((1, 10), (7, 10), (1023, 10), (4096, 10), (7, 1), (1023, 1))
ALPHA = 0.1


def tolerance(dtype: Any, terms: int = 1) -> dict[str, float]:
    """Tolerances for ``dtype``; sums of many ``terms`` (column sums, loss totals) get a wider ``atol``."""
    if np.dtype(dtype) == np.float32:
        return {"rtol": 2e-5, "atol": 1e-6 * terms}
    return {"rtol": 1e-11, "atol": 1e-13 * terms}


def place(xp: ModuleType, values: np.ndarray, contiguous: bool) -> Any:
    """``values`` as an ``xp`` array; a non-contiguous one is every other column (element) of a wider one."""
    if contiguous:
        return xp.asarray(values.copy())
    wide = xp.full((*values.shape[:-1], 2 * values.shape[-1]), np.nan, dtype=values.dtype)
    view = wide[..., ::2]
    view[...] = xp.asarray(values)
    return view


def host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") else np.asarray(x)


def assert_close(actual: Any, expected: Any, dtype: Any, terms: int = 1) -> None:
    np.testing.assert_allclose(host(actual), host(expected), **tolerance(dtype, terms))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def one_hot_targets(rng: np.random.Generator, n: int, m: int, dtype: Any) -> np.ndarray:
    """One-hot rows for several outputs; 0/1 labels for a single output."""
    if m == 1:
        return rng.integers(0, 2, (n, 1)).astype(dtype)
    return np.eye(m, dtype=dtype)[rng.integers(0, m, n)]


def run_both(kernel: str, make_args, dtype: Any, compare: tuple[int, ...], sums: tuple[int, ...] = ()):
    """Call ``kernel`` from both kernel sets on fresh ``make_args()``; the ``compare`` arguments must agree.

    Arguments in ``sums`` are totals over the rows of the first argument and get a tolerance to match.
    """
    expected = make_args()
    actual = make_args()
    getattr(reference, kernel)(*expected)
    getattr(fused, kernel)(*actual)
    rows = expected[0].shape[0]
    for k in compare:
        assert_close(actual[k], expected[k], dtype, rows if k in sums else 1)


def check_bias_activation(xp, rng, shape, dtype, code, with_d, contiguous=True) -> None:
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)

    def make_args():
        out = place(xp, np.zeros(shape, dtype), contiguous)
        d = place(xp, np.zeros(shape, dtype), contiguous) if with_d else None
        return [place(xp, z, contiguous), place(xp, b, contiguous), code, ALPHA, out, d]

    run_both("bias_activation", make_args, dtype, (0, 4, 5) if with_d and code != SOFTMAX else (0, 4))


def check_activation_backward(xp, rng, shape, dtype, code, alias, contiguous=True) -> None:
    da = rng.standard_normal(shape).astype(dtype)
    d = rng.random(shape).astype(dtype)
    a = softmax(rng.standard_normal(shape)).astype(dtype)
    marker = np.full(shape[1], 7.0, dtype)

    def make_args():
        args = [place(xp, v, contiguous) for v in (da, d, a)]
        dz = args[0] if alias else place(xp, np.zeros(shape, dtype), contiguous)
        return [*args, code, dz, place(xp, marker, contiguous)]

    run_both("activation_backward", make_args, dtype, (4, 5), sums=(5,))


def check_loss(xp, rng, shape, dtype, kernel, contiguous=True) -> None:
    n, m = shape
    z = (2 * rng.standard_normal(shape)).astype(dtype)
    a = (softmax(z) if kernel == "softmax_cross_entropy" else sigmoid(z)).astype(dtype)
    y = one_hot_targets(rng, n, m, dtype)

    def make_args():
        stats = xp.asarray(np.array([1.5, 2.0]))
        arrays = [place(xp, v, contiguous) for v in (z, a, y, np.zeros(shape, dtype))]
        if kernel == "squared_error":
            return [*arrays[1:], stats, 2.0 / (n * m), 1.0 / m]
        return [*arrays, stats]

    stats_at = 3 if kernel == "squared_error" else 4
    run_both(kernel, make_args, dtype, (stats_at - 1, stats_at), sums=(stats_at,))


def check_optimizer(xp, rng, size, dtype, kernel, contiguous=True) -> None:
    values = [rng.standard_normal(size).astype(dtype) for _ in range(3)]
    values.append(rng.random(size).astype(dtype))  # Adam's second moment is never negative

    def make_args():
        p, g, m, v = (place(xp, x, contiguous) for x in values)
        if kernel == "sgd_update":
            return [p, g, 0.05]
        if kernel == "momentum_update":
            return [p, g, m, 0.05, 0.9]
        return [p, g, m, v, 0.01 / (1 - 0.9**3), 0.9, 0.999, 1e-8, (1 - 0.999**3) ** 0.5]

    compare = {"sgd_update": (0,), "momentum_update": (0, 2), "adam_update": (0, 2, 3)}[kernel]
    run_both(kernel, make_args, dtype, compare)


def check_gather_rows(xp, rng, shape, dtype, contiguous=True) -> None:
    src = rng.standard_normal(shape).astype(dtype)
    idx = rng.permutation(shape[0])[: max(1, shape[0] // 2)]
    out_shape = (idx.size, shape[1])

    def make_args():
        return [
            place(xp, src, contiguous),
            xp.asarray(idx),
            place(xp, np.zeros(out_shape, dtype), contiguous),
        ]

    run_both("gather_rows", make_args, dtype, (2,))


LOSSES = ("softmax_cross_entropy", "sigmoid_binary_cross_entropy", "squared_error")
OPTIMIZERS = ("sgd_update", "momentum_update", "adam_update")
CODES = sorted(ACTIVATIONS.values())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --- simulator (or a real device with host arrays): NumPy inputs ------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SIM_SHAPES)
@pytest.mark.parametrize("code", CODES)
def test_bias_activation(rng, shape, dtype, code) -> None:
    check_bias_activation(np, rng, shape, dtype, code, with_d=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", CODES)
def test_bias_activation_without_d(rng, dtype, code) -> None:
    check_bias_activation(np, rng, (7, 3), dtype, code, with_d=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SIM_SHAPES)
@pytest.mark.parametrize("code", CODES)
def test_activation_backward(rng, shape, dtype, code) -> None:
    check_activation_backward(np, rng, shape, dtype, code, alias=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", CODES)
def test_activation_backward_dz_aliases_da(rng, dtype, code) -> None:
    check_activation_backward(np, rng, (33, 10), dtype, code, alias=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", [ACTIVATIONS["relu"], ACTIVATIONS["softmax"]])
def test_column_sums_stride_over_more_column_tiles_than_blocks(rng, dtype, code) -> None:
    """Odd sizes, more column tiles than the simulator's blocks and more rows than row groups per column."""
    tiles = -(-41 // activations_cuda.COLUMN_TILE)
    assert tiles * THREADS_PER_BLOCK > MAX_BLOCKS * THREADS_PER_BLOCK and activations_cuda.ROW_GROUPS < 37
    check_activation_backward(np, rng, (37, 41), dtype, code, alias=False)


def test_column_sums_add_in_a_fixed_order(rng) -> None:
    """The same input gives the same bits on every run (no atomics: a fixed tree over the row groups)."""
    da, d = (rng.standard_normal((45, 19)).astype(np.float32) for _ in range(2))
    sums = []
    for _ in range(2):
        db = np.zeros(19, np.float32)
        fused.activation_backward(da, d, None, ACTIVATIONS["relu"], np.empty_like(da), db)
        sums.append(db)
    assert sums[0].tobytes() == sums[1].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SIM_SHAPES)
@pytest.mark.parametrize("kernel", LOSSES)
def test_losses(rng, shape, dtype, kernel) -> None:
    check_loss(np, rng, shape, dtype, kernel)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", (1, 7, 333))
@pytest.mark.parametrize("kernel", OPTIMIZERS)
def test_optimizers(rng, size, dtype, kernel) -> None:
    check_optimizer(np, rng, size, dtype, kernel)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SIM_SHAPES)
def test_gather_rows(rng, shape, dtype) -> None:
    check_gather_rows(np, rng, shape, dtype)


def test_stats_values() -> None:
    """Hand-checked loss and correct count accumulate onto what stats held."""
    z = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32))
    a = softmax(z).astype(np.float32)
    y = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    dz = np.zeros_like(z)
    stats = np.array([1.0, 3.0])
    fused.softmax_cross_entropy(z, a, y, dz, stats)
    np.testing.assert_allclose(stats, [1.0 - np.log(0.7) - np.log(0.3), 4.0], rtol=1e-6)
    np.testing.assert_allclose(dz, (a - y) / 2, rtol=1e-6)

    a = np.array([[0.5], [0.2], [0.9]])
    y = np.array([[1.0], [1.0], [0.0]])
    stats = np.zeros(2)
    fused.squared_error(a, y, np.zeros_like(a), stats, 1.0, 0.5)
    np.testing.assert_allclose(stats, [0.5 * (0.25 + 0.64 + 0.81), 1.0])


def test_float32_stays_float32(rng) -> None:
    z = rng.standard_normal((7, 3)).astype(np.float32)
    a, d = np.empty_like(z), np.empty_like(z)
    fused.bias_activation(z, np.zeros(3, np.float32), ACTIVATIONS["sigmoid"], ALPHA, a, d)
    assert a.dtype == d.dtype == z.dtype == np.float32
    assert compile_kernels(np.float32) is compile_kernels("float32")  # compiled once per dtype


def test_mixed_dtypes_and_bad_codes_are_refused(rng) -> None:
    z = rng.standard_normal((7, 3))
    with pytest.raises(TypeError, match="float64 and float32"):
        fused.bias_activation(z, np.zeros(3, np.float32), ACTIVATIONS["relu"], ALPHA, np.empty_like(z), None)
    with pytest.raises(TypeError, match="stats must be float64"):
        fused.squared_error(z, z.copy(), np.empty_like(z), np.zeros(2, np.float32), 1.0, 1.0)
    with pytest.raises(TypeError, match="idx must be int64"):
        fused.gather_rows(z, np.arange(3, dtype=np.int32), np.empty_like(z[:3]))
    with pytest.raises(ValueError, match="unknown activation code 99"):
        fused.bias_activation(z, np.zeros(3), 99, ALPHA, np.empty_like(z), None)
    with pytest.raises(TypeError, match="float32 or float64"):
        compile_kernels(np.int32)


# --- a real GPU: CuPy arrays, larger, non-contiguous, on a non-default stream ------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("contiguous", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GPU_SHAPES)
def test_gpu_matches_reference(rng, shape, dtype, contiguous) -> None:
    import cupy

    for code in CODES:
        for with_d in (True, False):
            check_bias_activation(cupy, rng, shape, dtype, code, with_d, contiguous)
        for alias in (True, False):
            check_activation_backward(cupy, rng, shape, dtype, code, alias, contiguous)
    for kernel in LOSSES:
        check_loss(cupy, rng, shape, dtype, kernel, contiguous)
    for kernel in OPTIMIZERS:
        check_optimizer(cupy, rng, shape[0] * shape[1], dtype, kernel, contiguous)
    check_gather_rows(cupy, rng, shape, dtype, contiguous)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(9, 4096 * 32 + 7), (1100, 1031)])
def test_gpu_row_and_column_kernels_over_2_20_elements(rng, shape) -> None:
    """Over 2^20 elements: more column tiles than blocks (grid-strided), many rows per column, long softmax rows."""
    import cupy

    check_bias_activation(cupy, rng, shape, np.float32, SOFTMAX, with_d=False)
    for code in (ACTIVATIONS["relu"], SOFTMAX):
        check_activation_backward(cupy, rng, shape, np.float32, code, alias=False)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_runs_on_the_current_stream(rng, dtype) -> None:
    """On a non-default CuPy stream, kernels see earlier CuPy work and later CuPy work sees their results."""
    import cupy

    n, m = 4096, 10
    z_host = rng.standard_normal((n, m)).astype(dtype)
    with cupy.cuda.Stream(non_blocking=True) as stream:
        z = cupy.asarray(z_host) * 2  # CuPy work queued before the kernel on the same stream
        a = cupy.empty_like(z)
        fused.bias_activation(z, cupy.zeros(m, dtype), ACTIVATIONS["tanh"], ALPHA, a, None)
        total = a.sum()  # and CuPy work after it
        stream.synchronize()
    assert_close(a, np.tanh(2 * z_host), dtype)
    np.testing.assert_allclose(float(total), np.tanh(2 * z_host).sum(), rtol=1e-4)


@pytest.mark.gpu
def test_gpu_arrays_are_used_in_place(rng) -> None:
    """Outputs land in the very CuPy buffers passed in (no hidden copies)."""
    import cupy

    p = cupy.asarray(rng.standard_normal(1023).astype(np.float32))
    g = cupy.ones_like(p)
    pointer = p.data.ptr
    before = p.copy()
    fused.sgd_update(p, g, 0.5)
    assert p.data.ptr == pointer
    assert_close(p, before - 0.5, np.float32)


# --- the GPU backend's helpers -----------------------------------------------------------------------------


class FakeOutOfMemoryError(MemoryError):
    """Stands in for cupy.cuda.memory.OutOfMemoryError where CuPy is missing."""


def test_out_of_memory_message() -> None:
    message = out_of_memory_message(256, 3 * 2**30)
    assert "batch size 256" in message
    assert "3.0 GiB (3,221,225,472 bytes)" in message
    assert "smaller batch size" in message
    assert "batch size 1:" in out_of_memory_message(1, 0)


def test_translate_out_of_memory(monkeypatch) -> None:
    fake_cupy = SimpleNamespace(
        cuda=SimpleNamespace(memory=SimpleNamespace(OutOfMemoryError=FakeOutOfMemoryError))
    )
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    failure = FakeOutOfMemoryError(
        "Out of memory allocating 1,073,741,824 bytes (allocated so far: 512 bytes)."
    )
    expected = r"batch size 64: .* 1\.0 GiB .*smaller batch size"
    with pytest.raises(DeviceError, match=expected) as info, translate_out_of_memory(64):
        raise failure
    assert info.value.__cause__ is failure and "--batch-size 32" in info.value.hint
    with pytest.raises(KeyError), translate_out_of_memory(64):
        raise KeyError("other errors pass through")


@pytest.mark.gpu
def test_gpu_out_of_memory_becomes_device_error() -> None:
    import cupy

    with pytest.raises(DeviceError, match="batch size 4096: ") as caught, translate_out_of_memory(4096):
        cupy.empty(2**60, dtype=cupy.uint8)
    assert caught.value.hint == "try --batch-size 2048 or --device cpu"


@pytest.mark.gpu
def test_gpu_backend_describes_itself_and_compiles_up_front() -> None:
    from xpnet.backend import get_backend

    backend = get_backend("gpu", "float32", seed=0, kernel_mode="fused")
    assert isinstance(backend.kernels, CudaKernels)
    assert _compiled.get(np.dtype(np.float32)) is not None
    facts = backend.describe()
    keys = (
        "backend",
        "gpu",
        "gpu_memory",
        "compute_capability",
        "cuda_runtime",
        "cuda_driver",
        "cupy",
        "numba",
    )
    assert all(facts[key] for key in keys), facts
    assert facts["backend"] == "gpu"
