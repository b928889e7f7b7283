"""Every kernel set runs the same cases and agrees with the reference; a kernel a set lacks falls back to it.

``CASES`` holds one small case per declared kernel (the kernel list comes from the registrations, so a new kernel
without a case fails here). The CUDA set runs under Numba's simulator without a GPU (conftest), hence the sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from xpnet.kernels import ACTIVATIONS
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.registry import KernelSet, kernels
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

RESULT = -1
"""In a case's compared positions: the kernel's return value (hue histograms return theirs)."""

Case = tuple[list[Any], tuple[int, ...]]


def _normal(rng: np.random.Generator, dtype: Any, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _positive(rng: np.random.Generator, dtype: Any, *shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape).astype(dtype)


def _one_hot(rng: np.random.Generator, dtype: Any, n: int, m: int) -> np.ndarray:
    return np.eye(m, dtype=dtype)[rng.integers(0, m, n)]


def _mask(rng: np.random.Generator, dtype: Any, n: int) -> np.ndarray:
    """A decay mask: 1 for the parameters that decay, 0 for the rest."""
    return (rng.random(n) < 0.6).astype(dtype)


def _empty(dtype: Any, *shape: int) -> np.ndarray:
    return np.full(shape, np.nan, dtype)


def _with_nonfinite(x: np.ndarray) -> np.ndarray:
    """``x`` with an infinity of each sign, a NaN and the largest finite value (which is no infinity)."""
    x[1, 2], x[4, 0], x[6, 4], x[0, 0] = np.inf, -np.inf, np.nan, np.finfo(x.dtype).max
    return x


def _activation(name: str) -> Callable[[np.random.Generator, Any], Case]:
    def case(rng: np.random.Generator, dtype: Any) -> Case:
        z = _normal(rng, dtype, 7, 5)
        return [z, _normal(rng, dtype, 5), ACTIVATIONS[name], 0.1, _empty(dtype, 7, 5), _empty(dtype, 7, 5)], (0, 4, 5)
    return case


def _classifier_loss(name: str) -> Callable[[np.random.Generator, Any], Case]:
    def case(rng: np.random.Generator, dtype: Any) -> Case:
        z = _normal(rng, dtype, 7, 4)
        if name == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            a = 1 / (1 + np.exp(-z))
        return [z, a, _one_hot(rng, dtype, 7, 4), _empty(dtype, 7, 4), np.zeros(2)], (3, 4)
    return case


CASES: dict[str, Callable[[np.random.Generator, Any], Case]] = {
    "bias_activation": _activation("tanh"),
    "activation_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 7, 5), _positive(rng, dtype, 7, 5), _positive(rng, dtype, 7, 5), ACTIVATIONS["relu"],
         _empty(dtype, 7, 5), _empty(dtype, 5)], (4, 5)),
    "bias_gradient": lambda rng, dtype: ([_normal(rng, dtype, 7, 5), _empty(dtype, 5)], (1,)),
    "softmax_cross_entropy": _classifier_loss("softmax"),
    "sigmoid_binary_cross_entropy": _classifier_loss("sigmoid"),
    "squared_error": lambda rng, dtype: (
        [_normal(rng, dtype, 7, 3), _normal(rng, dtype, 7, 3), _empty(dtype, 7, 3), np.zeros(2), 0.3, 0.7], (2, 3)),
    "sgd_update": lambda rng, dtype: ([_normal(rng, dtype, 9), _normal(rng, dtype, 9), 0.1], (0,)),
    "momentum_update": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _normal(rng, dtype, 9), 0.1, 0.9], (0, 2)),
    "adam_update": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _normal(rng, dtype, 9), _positive(rng, dtype, 9),
         0.01, 0.9, 0.999, 1e-8, 0.5], (0, 2, 3)),
    "sgd_update_hyper": lambda rng, dtype: ([_normal(rng, dtype, 9), _normal(rng, dtype, 9), np.array([0.1, 3.0])],
                                            (0,)),
    "momentum_update_hyper": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _normal(rng, dtype, 9), np.array([0.1, 3.0]), 0.9], (0, 2)),
    "adam_update_hyper": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _normal(rng, dtype, 9), _positive(rng, dtype, 9),
         np.array([0.01, 3.0]), 0.9, 0.999, 1e-8], (0, 2, 3)),
    "squared_norm": lambda rng, dtype: ([_normal(rng, dtype, 9), np.full(1, 7.0)], (1,)),
    "sgd_regularized_update": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _mask(rng, dtype, 9), np.array([4.0]), 1.0, 0.1, 0.01],
        (0,)),
    "momentum_regularized_update": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _normal(rng, dtype, 9), _mask(rng, dtype, 9),
         np.array([4.0]), 1.0, 0.1, 0.9, 0.01, 1], (0, 2)),
    "adam_regularized_update": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _normal(rng, dtype, 9), _positive(rng, dtype, 9),
         _mask(rng, dtype, 9), np.array([4.0]), 1.0, 0.01, 0.9, 0.999, 1e-8, 0.5, 0.01, 0.001], (0, 2, 3)),
    "rmsprop_update": lambda rng, dtype: (
        [_normal(rng, dtype, 9), _normal(rng, dtype, 9), _positive(rng, dtype, 9) + 1, _normal(rng, dtype, 9),
         _normal(rng, dtype, 9) / 4, _mask(rng, dtype, 9), np.array([4.0]), 1.0, 0.01, 0.99, 1e-8, 0.01, 0.9, 1],
        (0, 2, 3, 4)),
    "max_norm": lambda rng, dtype: ([_normal(rng, dtype, 6, 4) * np.array([1, 2, 0.1, 3], dtype), 1.5], (0,)),
    "softmax_cross_entropy_smoothed": lambda rng, dtype: ([*_classifier_loss("softmax")(rng, dtype)[0], 0.1], (3, 4)),
    "count_nonfinite": lambda rng, dtype: (
        [_with_nonfinite(_normal(rng, dtype, 7, 5)), np.array([-1], np.int64)], (1,)),
    "gather_rows": lambda rng, dtype: (
        [_normal(rng, dtype, 6, 3), np.array([4, 0, 4, 2], np.int64), _empty(dtype, 4, 3)], (2,)),
    "im2col": lambda rng, dtype: ([_normal(rng, dtype, 2, 5, 4, 3), 1, 2, 1, 1, _empty(dtype, 2, 5, 3, 3, 2, 3)], (5,)),
    "col2im": lambda rng, dtype: ([_normal(rng, dtype, 2, 5, 3, 3, 2, 3), 1, 2, 1, 1, _empty(dtype, 2, 5, 4, 3)], (5,)),
    "max_pool": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 5, 4, 3), 2, 2, 2, 2, _empty(dtype, 2, 2, 2, 3), np.full((2, 2, 2, 3), -1, np.int32)],
        (5, 6)),
    "max_pool_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 2, 2, 3), rng.integers(0, 4, (2, 2, 2, 3)).astype(np.int32), 2, 2, 2, 2,
         _empty(dtype, 2, 5, 4, 3)], (6,)),
    "max_pool_activation": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 5, 7, 3), 2, 3, _normal(rng, dtype, 3), ACTIVATIONS["leaky_relu"], 0.1,
         _empty(dtype, 2, 2, 2, 3), _empty(dtype, 2, 2, 2, 3), _empty(dtype, 2, 2, 2, 3),
         np.full((2, 2, 2, 3), -1, np.int32)], (6, 7, 8, 9)),
    "max_pool_activation_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 2, 2, 3), _positive(rng, dtype, 2, 2, 2, 3),
         rng.integers(0, 6, (2, 2, 2, 3)).astype(np.int32), 2, 3, _empty(dtype, 2, 5, 7, 3), _empty(dtype, 3)],
        (5, 6)),
    "avg_pool": lambda rng, dtype: ([_normal(rng, dtype, 2, 5, 4, 3), 3, 2, 1, 2, _empty(dtype, 2, 3, 2, 3)], (5,)),
    "avg_pool_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 3, 2, 3), 3, 2, 1, 2, _empty(dtype, 2, 5, 4, 3)], (5,)),
    "global_avg_pool": lambda rng, dtype: ([_normal(rng, dtype, 2, 5, 4, 3), _empty(dtype, 2, 3)], (1,)),
    "global_avg_pool_backward": lambda rng, dtype: ([_normal(rng, dtype, 2, 3), _empty(dtype, 2, 5, 4, 3)], (1,)),
    "dropout": lambda rng, dtype: (
        [_normal(rng, dtype, 3, 4, 5), 0.3, 1, 2, _empty(dtype, 3, 4, 5), _empty(dtype, 3, 4, 5)], (4, 5)),
    "dropout_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 3, 5), _positive(rng, dtype, 3, 5), _empty(dtype, 3, 5)], (2,)),
    "random_shift": lambda rng, dtype: ([_normal(rng, dtype, 3, 5, 4, 2), 2, 1, 3, 4, _empty(dtype, 3, 5, 4, 2)], (5,)),
    "random_shift_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 3, 5, 4, 2), 2, 1, 3, 4, _empty(dtype, 3, 5, 4, 2)], (5,)),
    "batch_norm_train": lambda rng, dtype: (
        [_normal(rng, dtype, 9, 3), _positive(rng, dtype, 3), _normal(rng, dtype, 3), 1e-3, 0.9,
         _normal(rng, dtype, 3), _positive(rng, dtype, 3), _empty(dtype, 9, 3), _empty(dtype, 9, 3),
         _empty(dtype, 3)], (5, 6, 7, 8, 9)),
    "batch_norm_eval": lambda rng, dtype: (
        [_normal(rng, dtype, 9, 3), _positive(rng, dtype, 3), _normal(rng, dtype, 3), _normal(rng, dtype, 3),
         _positive(rng, dtype, 3), 1e-3, _empty(dtype, 9, 3)], (6,)),
    "batch_norm_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 9, 3), _normal(rng, dtype, 9, 3), _positive(rng, dtype, 3), _positive(rng, dtype, 3),
         _empty(dtype, 9, 3), _empty(dtype, 3), _empty(dtype, 3)], (4, 5, 6)),
    "product": lambda rng, dtype: ([_normal(rng, dtype, 7, 5), _normal(rng, dtype, 5, 3), _empty(dtype, 7, 3)], (2,)),
    "weight_gradient": lambda rng, dtype: ([_normal(rng, dtype, 7, 5), _normal(rng, dtype, 7, 3), _empty(dtype, 5, 3)],
                                           (2,)),
    "convolution": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 5, 4, 3), _normal(rng, dtype, 18, 4), 1, 2, 1, 1, _empty(dtype, 2, 5, 3, 3, 2, 3),
         _empty(dtype, 30, 4)], (6, 7)),
    "convolution_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 5, 3, 3, 2, 3), _normal(rng, dtype, 30, 4), _normal(rng, dtype, 18, 4), 1, 2, 1, 1,
         _empty(dtype, 18, 4), _empty(dtype, 2, 5, 4, 3)], (0, 7, 8)),
    "pooled_convolution": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 5, 4, 3), _normal(rng, dtype, 18, 4), 1, 2, 1, 1, _empty(dtype, 2, 5, 3, 3, 2, 3),
         _empty(dtype, 2, 5, 3, 4), 2, 2, _normal(rng, dtype, 4), ACTIVATIONS["leaky_relu"], 0.1,
         _empty(dtype, 2, 2, 1, 4), _empty(dtype, 2, 2, 1, 4), _empty(dtype, 2, 2, 1, 4),
         np.full((2, 2, 1, 4), -1, np.int32)], (6, 7, 13, 14, 15, 16)),
    "pooled_convolution_backward": lambda rng, dtype: (
        [_normal(rng, dtype, 2, 2, 1, 4), _positive(rng, dtype, 2, 2, 1, 4),
         rng.integers(0, 4, (2, 2, 1, 4)).astype(np.int32), 2, 2, _normal(rng, dtype, 2, 5, 3, 3, 2, 3),
         _normal(rng, dtype, 18, 4), 1, 2, 1, 1, _empty(dtype, 2, 5, 3, 4), _empty(dtype, 4), _empty(dtype, 18, 4),
         _empty(dtype, 2, 5, 4, 3)], (5, 11, 12, 13, 14)),
    "hue_histograms": lambda rng, dtype: ([rng.integers(0, 256, (2, 3, 4, 3), dtype=np.uint8), 12], (RESULT,)),
}

SETS: dict[str, type[KernelSet]] = {"reference": ReferenceKernels, "cpu": CpuKernels, "cuda": CudaKernels}
DTYPES = (np.float32, np.float64)


def run(kernel_set: KernelSet, name: str, dtype: Any, seed: int = 0) -> list[Any]:
    """Kernel ``name`` of ``kernel_set`` on a fresh copy of its case: the compared outputs, in order."""
    args, compared = CASES[name](np.random.default_rng(seed), dtype)
    result = getattr(kernel_set, name)(*args)
    return [result if k == RESULT else args[k] for k in compared]


def assert_same(actual: list[Any], expected: list[Any], dtype: Any) -> None:
    tol = 2e-5 if dtype == np.float32 else 1e-11
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol)


def test_every_declared_kernel_has_a_case() -> None:
    assert set(CASES) == set(kernels())


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("set_name", ["cpu", "cuda"])
def test_every_set_agrees_with_the_reference(set_name: str, dtype: Any, name: str) -> None:
    assert_same(run(SETS[set_name](), name, dtype), run(ReferenceKernels(), name, dtype), dtype)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("set_name", ["cpu", "cuda"])
def test_a_missing_kernel_falls_back_to_the_reference(set_name: str, name: str) -> None:
    """A set whose variant lacks ``name`` (left out on purpose) runs the reference for it, and the rest as before."""
    full = SETS[set_name]

    class Lacking(KernelSet, variant=full.variant, omit={name}):
        mode = "fused"

    lacking = Lacking()
    assert lacking.implementation(name) == "reference"
    assert {n for n in full.overridden if n != name} == set(Lacking.overridden)
    assert_same(run(lacking, name, np.float64), run(ReferenceKernels(), name, np.float64), np.float64)


MOMENTS = {"momentum_update": ((2,), None), "momentum_update_hyper": ((2,), None), "adam_update": ((2, 3), None),
           "adam_update_hyper": ((2, 3), None), "momentum_regularized_update": ((2,), 3),
           "adam_regularized_update": ((2, 3), 4), "rmsprop_update": ((2, 3, 4), 5)}
"""Each optimizer update that keeps moments: their argument indices, and its decay mask's (zeroed: no L2 term)."""


@pytest.mark.parametrize("name", sorted(MOMENTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("set_name", SETS)
def test_a_moment_that_decays_below_the_smallest_normal_number_becomes_zero(set_name: str, dtype: Any,
                                                                            name: str) -> None:
    """With a zero gradient every moment decays: those just above the smallest normal number fall below it and
    become exactly zero, never subnormal (``kernels.scalar.normal_or_zero``); a large one decays as usual."""
    args, _ = CASES[name](np.random.default_rng(0), dtype)
    moments, mask = MOMENTS[name]
    args[1][:] = 0
    if mask is not None:
        args[mask][:] = 0
    for k in moments:
        args[k][:] = np.finfo(dtype).tiny * dtype(1.0001)
        args[k][0] = 0.5
    getattr(SETS[set_name](), name)(*args)
    for k in moments:
        assert 0.4 < args[k][0] < 0.5 and not args[k][1:].any(), (k, args[k])


def test_the_fused_sets_implement_what_their_families_define() -> None:
    assert CpuKernels().implementation("im2col") == "cpu" and CudaKernels().implementation("im2col") == "cuda"
    assert ReferenceKernels.overridden == frozenset(kernels())


@pytest.mark.parametrize("set_name", SETS)
def test_checks_run_at_the_boundary_of_every_set(set_name: str) -> None:
    """Each set refuses bad arguments with the kernel's one check, before any version runs."""
    kernel_set = SETS[set_name]()
    x = np.zeros((2, 5, 4, 3))
    with pytest.raises(ValueError, match="disagree"):
        kernel_set.im2col(x, 1, 1, 0, 0, np.empty((2, 3, 2, 3, 3, 4)))
    with pytest.raises(ValueError, match="uint8 RGB"):
        kernel_set.hue_histograms(x)
    with pytest.raises(ValueError, match="reaches past"):
        kernel_set.avg_pool(x, 2, 2, 2, 2, np.empty((2, 3, 2, 3)))
    with pytest.raises(ValueError, match="global pooling"):
        kernel_set.global_avg_pool(x, np.empty((2, 4)))
