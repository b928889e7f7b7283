"""Kernels for convolutional networks (im2col, col2im, max pooling, dropout, batch normalisation).

The reference is held to independent definitions (explicit loops, adjointness, the textbook batch norm, finite
differences); the CPU kernels and the CUDA kernels (under the simulator here: tiny sizes) are held to the
reference. Dropout masks must agree bit for bit across all three sets. ``gpu`` tests repeat the comparisons on
CuPy arrays at larger sizes.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from xpnet.kernels import ACTIVATIONS, array_module
from xpnet.kernels.batchnorm import cuda as batchnorm_cuda
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

cpu = CpuKernels()
gpu = CudaKernels()
reference = ReferenceKernels()

DTYPES = (np.float32, np.float64)
TOL = {np.float32: 2e-5, np.float64: 1e-12}

# (kh, kw, stride_h, stride_w, pad_top, pad_left); bottom/right padding equal to top/left
CONV_CASES = [
    (kh, kw, s, s, pad, pad) for (kh, kw), s, pad in itertools.product([(3, 3), (2, 3)], [1, 2], [0, 1])
] + [(3, 2, 2, 1, 1, 0), (1, 1, 1, 1, 0, 0)]
# (pool_h, pool_w, stride_h, stride_w)
POOL_CASES = [(2, 2, 2, 2), (3, 3, 1, 1), (2, 3, 2, 1), (3, 2, 1, 2), (3, 3, 2, 2), (1, 2, 2, 3)]


def _close(actual: Any, expected: Any, dtype: Any, terms: int = 1) -> None:
    """Equal within the dtype's tolerance; ``terms`` widens ``atol`` for sums of that many values."""
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(_host(actual), _host(expected), rtol=tol, atol=tol * terms)


def _host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _cols_shape(x_shape: tuple, case: tuple) -> tuple:
    n, h, w, c = x_shape
    kh, kw, sh, sw, pt, pl = case
    return (n, _out_size(h, kh, sh, pt), _out_size(w, kw, sw, pl), kh, kw, c)


def _pool_shape(x_shape: tuple, case: tuple) -> tuple:
    n, h, w, c = x_shape
    ph, pw, sh, sw = case
    return (n, (h - ph) // sh + 1, (w - pw) // sw + 1, c)


def _strided(xp: ModuleType, values: np.ndarray) -> Any:
    """``values`` as a non-contiguous ``xp`` view: every other element of the last axis of a wider array."""
    wide = xp.full((*values.shape[:-1], 2 * values.shape[-1]), np.nan, dtype=values.dtype)
    view = wide[..., ::2]
    view[...] = xp.asarray(values)
    return view


# --- naive definitions ----------------------------------------------------------------------------------------


def naive_im2col(x: np.ndarray, case: tuple) -> np.ndarray:
    kh, kw, sh, sw, pt, pl = case
    n_, h_, w_, c_ = x.shape
    cols = np.zeros(_cols_shape(x.shape, case), x.dtype)
    for n, i, j, p, q, c in itertools.product(*(range(k) for k in cols.shape)):
        h, w = i * sh + p - pt, j * sw + q - pl
        if 0 <= h < h_ and 0 <= w < w_:
            cols[n, i, j, p, q, c] = x[n, h, w, c]
    return cols


def naive_max_pool(x: np.ndarray, case: tuple) -> tuple[np.ndarray, np.ndarray]:
    ph, pw, sh, sw = case
    shape = _pool_shape(x.shape, case)
    out, where = np.empty(shape, x.dtype), np.empty(shape, np.int32)
    for n, i, j, c in itertools.product(*(range(k) for k in shape)):
        window = x[n, i * sh:i * sh + ph, j * sw:j * sw + pw, c].ravel()
        out[n, i, j, c] = window.max()
        where[n, i, j, c] = window.argmax()  # the first maximum
    return out, where


def naive_max_pool_backward(dout: np.ndarray, where: np.ndarray, x_shape: tuple, case: tuple) -> np.ndarray:
    ph, pw, sh, sw = case
    dx = np.zeros(x_shape, dout.dtype)
    for n, i, j, c in itertools.product(*(range(k) for k in dout.shape)):
        p, q = divmod(int(where[n, i, j, c]), pw)
        dx[n, i * sh + p, j * sw + q, c] += dout[n, i, j, c]
    return dx


def textbook_batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta


# --- calling a kernel set on fresh outputs --------------------------------------------------------------------


def run_im2col(kernels: ModuleType, x: Any, case: tuple) -> Any:
    xp = array_module(x)
    cols = xp.full(_cols_shape(x.shape, case), np.nan, x.dtype)
    kernels.im2col(x, *case[2:], cols)
    return cols


def run_col2im(kernels: ModuleType, cols: Any, x_shape: tuple, case: tuple) -> Any:
    dx = array_module(cols).full(x_shape, np.nan, cols.dtype)
    kernels.col2im(cols, *case[2:], dx)
    return dx


def run_max_pool(kernels: ModuleType, x: Any, case: tuple) -> tuple[Any, Any]:
    xp = array_module(x)
    shape = _pool_shape(x.shape, case)
    out, where = xp.full(shape, np.nan, x.dtype), xp.full(shape, -1, np.int32)
    kernels.max_pool(x, *case, out, where)
    return out, where


def run_max_pool_backward(kernels: ModuleType, dout: Any, where: Any, x_shape: tuple, case: tuple) -> Any:
    dx = array_module(dout).full(x_shape, np.nan, dout.dtype)
    kernels.max_pool_backward(dout, where, *case, dx)
    return dx


ELEMENTWISE = [ACTIVATIONS[name] for name in ("identity", "sigmoid", "tanh", "relu", "leaky_relu")]
"""The activations the fused max pool + activation kernels take (Conv2D's max_pool: those that never decrease)."""


def run_max_pool_activation(kernels: ModuleType, x: Any, pool: tuple, b: Any, code: int,
                            with_d: bool = True) -> tuple[Any, Any, Any, Any]:
    """z, a, d (None without) and argmax of ``max_pool_activation`` on fresh outputs (NaN and -1 beforehand)."""
    xp = array_module(x)
    shape = _pool_shape(x.shape, (*pool, *pool))
    z, a = xp.full(shape, np.nan, x.dtype), xp.full(shape, np.nan, x.dtype)
    d = xp.full(shape, np.nan, x.dtype) if with_d else None
    where = xp.full(shape, -1, np.int32)
    kernels.max_pool_activation(x, *pool, b, code, 0.1, z, a, d, where)
    return z, a, d, where


def run_max_pool_activation_backward(kernels: ModuleType, da: Any, d: Any, where: Any, pool: tuple,
                                     x_shape: tuple) -> tuple[Any, Any]:
    xp = array_module(da)
    dx, db = xp.full(x_shape, np.nan, da.dtype), xp.full(da.shape[-1], np.nan, da.dtype)
    kernels.max_pool_activation_backward(da, d, where, *pool, dx, db)
    return dx, db


def run_dropout(kernels: ModuleType, x: Any, rate: float, seed: int, step: int) -> tuple[Any, Any]:
    xp = array_module(x)
    out, mask = xp.full(x.shape, np.nan, x.dtype), xp.full(x.shape, np.nan, x.dtype)
    kernels.dropout(x, rate, seed, step, out, mask)
    return out, mask


def bn_inputs(rng: np.random.Generator, rows: int, columns: int, dtype: Any) -> dict[str, np.ndarray]:
    """x with columns of different means and spreads, and the parameters and statistics of a layer."""
    x = rng.standard_normal((rows, columns)) * rng.uniform(0.5, 3, columns) + rng.uniform(-2, 2, columns)
    values = {
        "x": x,
        "gamma": rng.uniform(0.5, 1.5, columns),
        "beta": rng.standard_normal(columns),
        "running_mean": rng.standard_normal(columns),
        "running_var": rng.uniform(0.5, 2, columns),
        "dy": rng.standard_normal((rows, columns)),
    }
    return {name: v.astype(dtype) for name, v in values.items()}


def run_batch_norm(kernels: ModuleType, xp: ModuleType, values: dict[str, np.ndarray], alias: bool = False) -> dict:
    """Train, eval and backward on fresh copies of ``values``; every output by name."""
    v = {name: xp.asarray(a.copy()) for name, a in values.items()}
    x = v["x"]
    dtype = x.dtype
    rows, columns = x.shape
    y, xhat, inv_std = xp.empty_like(x), xp.empty_like(x), xp.empty(columns, dtype)
    kernels.batch_norm_train(x, v["gamma"], v["beta"], 1e-3, 0.9, v["running_mean"], v["running_var"], y, xhat,
                             inv_std)
    y_eval = xp.empty_like(x)
    kernels.batch_norm_eval(x, v["gamma"], v["beta"], v["running_mean"], v["running_var"], 1e-3, y_eval)
    dx = v["dy"] if alias else xp.empty_like(x)
    dgamma, dbeta = xp.empty(columns, dtype), xp.empty(columns, dtype)
    kernels.batch_norm_backward(v["dy"], xhat, v["gamma"], inv_std, dx, dgamma, dbeta)
    return {"y": y, "xhat": xhat, "inv_std": inv_std, "running_mean": v["running_mean"],
            "running_var": v["running_var"], "y_eval": y_eval, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def compare_batch_norm(kernels: ModuleType, xp: ModuleType, values: dict, dtype: Any, alias: bool = False) -> None:
    expected = run_batch_norm(reference, np, values)
    actual = run_batch_norm(kernels, xp, values, alias)
    rows = values["x"].shape[0]
    for name in expected:
        _close(actual[name], expected[name], dtype, rows if name in ("dgamma", "dbeta") else 1)


# --- the reference against the naive definitions --------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_im2col_is_the_window_layout(case):
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 3))
    np.testing.assert_array_equal(run_im2col(reference, x, case), naive_im2col(x, case))


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_col2im_is_the_adjoint_of_im2col(case):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 4, 3))
    cols = rng.standard_normal(_cols_shape(x.shape, case))
    lhs = np.vdot(run_im2col(reference, x, case), cols)
    rhs = np.vdot(x, run_col2im(reference, cols, x.shape, case))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES)
def test_reference_max_pool_and_backward(case):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 6, 3))
    x[0, :3, :3, 0] = 1.0  # a tie: the first maximum wins
    out, where = run_max_pool(reference, x, case)
    naive_out, naive_where = naive_max_pool(x, case)
    np.testing.assert_array_equal(out, naive_out)
    np.testing.assert_array_equal(where, naive_where)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(run_max_pool_backward(reference, dout, where, x.shape, case),
                               naive_max_pool_backward(dout, where, x.shape, case), rtol=1e-12)


def naive_avg_pool(x: np.ndarray, case: tuple) -> np.ndarray:
    ph, pw, sh, sw = case
    out = np.empty(_pool_shape(x.shape, case), x.dtype)
    for n, i, j, c in itertools.product(*(range(k) for k in out.shape)):
        out[n, i, j, c] = x[n, i * sh:i * sh + ph, j * sw:j * sw + pw, c].mean()
    return out


def run_avg_pools(kernels: Any, x: Any, dout: Any, dglobal: Any, case: tuple) -> list[Any]:
    """avg_pool, avg_pool_backward, global_avg_pool and its backward of ``kernels`` into NaN-filled outputs."""
    xp = array_module(x)
    n, _, _, c = x.shape
    outputs = [xp.full(shape, np.nan, x.dtype) for shape in (dout.shape, x.shape, (n, c), x.shape)]
    kernels.avg_pool(x, *case, outputs[0])
    kernels.avg_pool_backward(dout, *case, outputs[1])
    kernels.global_avg_pool(x, outputs[2])
    kernels.global_avg_pool_backward(dglobal, outputs[3])
    return outputs


MAX_POOL_ACTIVATION_POOLS = [(2, 2), (3, 2), (1, 3)]
"""Side-by-side windows; on 7 x 5 images the first two leave a margin that no window covers."""


@pytest.mark.parametrize("pool", MAX_POOL_ACTIVATION_POOLS)
@pytest.mark.parametrize("code", ELEMENTWISE)
def test_reference_max_pool_activation_is_the_pool_then_the_activation(pool, code):
    """z = window max + b, a = f(z), d = f'(z) against the naive pool and finite differences of f; backward: dz =
    da * d at the argmax positions (the naive unpool), db its channel sums."""
    rng = np.random.default_rng(21)
    x, b = rng.standard_normal((2, 7, 5, 3)), rng.standard_normal(3)
    z, a, d, where = run_max_pool_activation(reference, x, pool, b, code)
    pooled, naive_where = naive_max_pool(x, (*pool, *pool))
    np.testing.assert_array_equal(where, naive_where)
    np.testing.assert_allclose(z, pooled + b, rtol=1e-12)
    h = 1e-6
    shifted = [run_max_pool_activation(reference, x, pool, b + step, code)[1] for step in (h, -h)]
    np.testing.assert_allclose(d, (shifted[0] - shifted[1]) / (2 * h), rtol=1e-5, atol=1e-7)
    da = rng.standard_normal(z.shape)
    dx, db = run_max_pool_activation_backward(reference, da, d, where, pool, x.shape)
    np.testing.assert_allclose(dx, naive_max_pool_backward(da * d, where, x.shape, (*pool, *pool)), rtol=1e-12)
    np.testing.assert_allclose(db, (da * d).sum(axis=(0, 1, 2)), rtol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES)
def test_reference_average_pools_are_window_means_and_their_adjoints(case):
    """The means by definition; each backward the adjoint of its forward: <pool(x), dy> = <x, pool_backward(dy)>."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 7, 6, 3))
    dout = rng.standard_normal(_pool_shape(x.shape, case))
    dglobal = rng.standard_normal((2, 3))
    out, dx, pooled, dx_global = run_avg_pools(reference, x, dout, dglobal, case)
    np.testing.assert_allclose(out, naive_avg_pool(x, case), rtol=1e-12)
    np.testing.assert_allclose((out * dout).sum(), (x * dx).sum(), rtol=1e-12)
    np.testing.assert_allclose(pooled, x.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose((pooled * dglobal).sum(), (x * dx_global).sum(), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_cpu_and_cuda_average_pools(dtype, case):
    """The CPU set on non-contiguous inputs (every other channel of wider arrays) and the CUDA set (contiguous
    host arrays: the simulator copies only those) give the reference's values."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal((2, 7, 5, 3)).astype(dtype)
    dout = rng.standard_normal(_pool_shape(x.shape, case)).astype(dtype)
    dglobal = rng.standard_normal((2, 3)).astype(dtype)
    expected = run_avg_pools(reference, x, dout, dglobal, case)
    for kernels, place in ((cpu, lambda v: _strided(np, v)), (gpu, np.copy)):
        actual = run_avg_pools(kernels, place(x), place(dout), place(dglobal), case)
        for a, e in zip(actual, expected, strict=True):
            _close(a, e, dtype, 9)


def test_reference_batch_norm_is_the_textbook_formula():
    rng = np.random.default_rng(3)
    values = bn_inputs(rng, 50, 4, np.float64)
    x, gamma, beta = values["x"], values["gamma"], values["beta"]
    result = run_batch_norm(reference, np, values)
    np.testing.assert_allclose(result["y"], textbook_batch_norm(x, gamma, beta, 1e-3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result["inv_std"], 1 / np.sqrt(x.var(axis=0) + 1e-3), rtol=1e-12)
    np.testing.assert_allclose(result["running_mean"], 0.9 * values["running_mean"] + 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(result["running_var"], 0.9 * values["running_var"] + 0.1 * x.var(axis=0))
    eval_expected = gamma * (x - result["running_mean"]) / np.sqrt(result["running_var"] + 1e-3) + beta
    np.testing.assert_allclose(result["y_eval"], eval_expected, rtol=1e-12, atol=1e-12)


def test_reference_batch_norm_backward_matches_finite_differences():
    """The gradients of L = sum(w * y(x, gamma, beta)) (with the batch statistics depending on x)."""
    rng = np.random.default_rng(4)
    values = bn_inputs(rng, 6, 3, np.float64)
    x, gamma, beta, w = values["x"], values["gamma"], values["beta"], values["dy"]

    def loss(x, gamma, beta):
        return float((w * textbook_batch_norm(x, gamma, beta, 1e-3)).sum())

    def numeric(array):
        grad = np.zeros_like(array)
        for k in np.ndindex(array.shape):
            saved = array[k]
            array[k] = saved + 1e-6
            up = loss(x, gamma, beta)
            array[k] = saved - 1e-6
            down = loss(x, gamma, beta)
            array[k] = saved
            grad[k] = (up - down) / 2e-6
        return grad

    result = run_batch_norm(reference, np, values)
    for name, array in (("dx", x), ("dgamma", gamma), ("dbeta", beta)):
        np.testing.assert_allclose(result[name], numeric(array), rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_reference_dropout_keeps_one_minus_rate(rate):
    x = np.ones((1000, 1000), np.float32)
    out, mask = run_dropout(reference, x, rate, seed=7, step=3)
    kept = mask != 0
    assert abs(kept.mean() - (1 - rate)) < 0.003
    np.testing.assert_array_equal(mask[kept], np.float32(1 / (1 - rate)))
    np.testing.assert_array_equal(out, x * mask)
    # rows and columns alike: no stripes from the flat index
    assert np.abs(kept.mean(axis=0) - (1 - rate)).max() < 0.08
    assert np.abs(kept.mean(axis=1) - (1 - rate)).max() < 0.08


def test_reference_dropout_masks_depend_on_seed_and_step_only():
    x = np.ones((64, 64))
    masks = {key: run_dropout(reference, x, 0.5, *key)[1] for key in [(1, 0), (1, 1), (2, 0), (2**40, 0)]}
    for a, b in itertools.combinations(masks.values(), 2):
        assert 0.3 < (a != b).mean() < 0.7  # about half the decisions differ, as for independent masks
    np.testing.assert_array_equal(run_dropout(reference, x, 0.5, 1, 1)[1], masks[(1, 1)])
    # the index is the flat C-order index, whatever the shape
    flat = run_dropout(reference, x.ravel(), 0.5, 1, 1)[1]
    np.testing.assert_array_equal(flat.reshape(x.shape), masks[(1, 1)])


# --- the CPU kernels against the reference --------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])  # one channel: im2col's window-row path
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES + [(5, 5, 2, 2, 2, 2), (5, 3, 1, 2, 2, 1), (3, 3, 1, 3, 1, 1)])
@pytest.mark.parametrize("width", [5, 11])  # 11: columns inside the image and in the padding at both ends
def test_cpu_im2col_and_col2im(dtype, case, channels, width):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 7, width, channels)).astype(dtype)
    np.testing.assert_array_equal(run_im2col(cpu, x, case), run_im2col(reference, x, case))
    cols = rng.standard_normal(_cols_shape(x.shape, case)).astype(dtype)
    _close(run_col2im(cpu, cols, x.shape, case), run_col2im(reference, cols, x.shape, case), dtype, 9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_cpu_max_pool_and_backward(dtype, case):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 7, 5, 3)).astype(dtype)
    x[1, :, :, 2] = np.round(x[1, :, :, 2])  # ties
    out, where = run_max_pool(cpu, x, case)
    expected_out, expected_where = run_max_pool(reference, x, case)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(where, expected_where)
    dout = rng.standard_normal(out.shape).astype(dtype)
    _close(run_max_pool_backward(cpu, dout, where, x.shape, case),
           run_max_pool_backward(reference, dout, where, x.shape, case), dtype, 9)


@pytest.mark.parametrize("with_d", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool", MAX_POOL_ACTIVATION_POOLS)
@pytest.mark.parametrize("code", ELEMENTWISE)
def test_cpu_max_pool_activation_is_the_two_passes_it_replaces_bit_for_bit(code, pool, dtype, with_d):
    """The fused CPU kernels give what max_pool + bias_activation and activation_backward + max_pool_backward
    give, to the bit (on non-contiguous inputs, with ties and a margin no window covers), and the reference's
    values; 92 to 161 windows make two or three blocks of the bias gradient's sums."""
    rng = np.random.default_rng(24)
    x = rng.standard_normal((23, 7, 5, 3)).astype(dtype)
    x[1, :, :, 2] = np.round(x[1, :, :, 2])  # ties
    b = rng.standard_normal(3).astype(dtype)
    fused = run_max_pool_activation(cpu, _strided(np, x), pool, _strided(np, b), code, with_d)
    case = (*pool, *pool)
    z, where = run_max_pool(cpu, x, case)
    rows = (-1, 3)
    a, d = np.empty_like(z), np.empty_like(z) if with_d else None
    cpu.bias_activation(z.reshape(rows), b, code, 0.1, a.reshape(rows), None if d is None else d.reshape(rows))
    for actual, expected in zip(fused, (z, a, d, where), strict=True):
        np.testing.assert_array_equal(actual, expected)
    for actual, expected in zip(fused, run_max_pool_activation(reference, x, pool, b, code, with_d), strict=True):
        if expected is not None:
            _close(actual, expected, dtype)
    if not with_d:
        return
    da = rng.standard_normal(z.shape).astype(dtype)
    dx, db = run_max_pool_activation_backward(cpu, _strided(np, da), _strided(np, d), where, pool, x.shape)
    dz, expected_db = np.empty_like(da), np.empty(3, dtype)
    cpu.activation_backward(da.reshape(rows), d.reshape(rows), a.reshape(rows), code, dz.reshape(rows), expected_db)
    np.testing.assert_array_equal(dx, run_max_pool_backward(cpu, dz, where, x.shape, case))
    np.testing.assert_array_equal(db, expected_db)
    expected_dx, reference_db = run_max_pool_activation_backward(reference, da, d, where, pool, x.shape)
    _close(dx, expected_dx, dtype)
    _close(db, reference_db, dtype, da.size // 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 5), (3, 7, 5, 3), (2, 3, 1, 4, 5)])
def test_cpu_dropout_is_the_reference_bit_for_bit(dtype, shape):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    for rate, seed, step in [(0.0, 0, 0), (0.3, 11, 5), (0.75, 2**63 + 5, 2**33)]:
        out, mask = run_dropout(cpu, x, rate, seed, step)
        expected_out, expected_mask = run_dropout(reference, x, rate, seed, step)
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(out, expected_out)
        dx = np.empty_like(x)
        cpu.dropout_backward(x, mask, dx)
        np.testing.assert_array_equal(dx, x * mask)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_kernels_take_non_contiguous_arrays(dtype):
    rng = np.random.default_rng(8)
    values = rng.standard_normal((3, 7, 5, 3)).astype(dtype)
    x = _strided(np, values)
    case = (3, 3, 2, 2, 1, 1)
    cols = _strided(np, np.zeros(_cols_shape(x.shape, case), dtype))
    cpu.im2col(x, *case[2:], cols)
    np.testing.assert_array_equal(cols, run_im2col(reference, values, case))
    dx = _strided(np, np.zeros(x.shape, dtype))
    cpu.col2im(cols, *case[2:], dx)
    _close(dx, run_col2im(reference, np.ascontiguousarray(cols), x.shape, case), dtype, 9)
    out, where = run_max_pool(cpu, x, (2, 2, 2, 2))
    np.testing.assert_array_equal(out, run_max_pool(reference, values, (2, 2, 2, 2))[0])
    out, mask = _strided(np, np.zeros_like(values)), _strided(np, np.zeros_like(values))
    cpu.dropout(x, 0.5, 3, 4, out, mask)
    expected_out, expected_mask = run_dropout(reference, values, 0.5, 3, 4)
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(out, expected_out)
    cpu.dropout(x, 0.5, 3, 4, x, mask)  # in place
    np.testing.assert_array_equal(x, expected_out)
    cpu.dropout_backward(x, mask, x)  # dx is dout
    np.testing.assert_array_equal(x, expected_out * expected_mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (105, 3), (33, 16)])
def test_cpu_batch_norm(dtype, shape):
    values = bn_inputs(np.random.default_rng(shape[0]), *shape, dtype)
    compare_batch_norm(cpu, np, values, dtype)
    compare_batch_norm(cpu, np, values, dtype, alias=True)


def test_cpu_parallel_variants_match_the_reference(parallel_kernels):
    """Every kernel's parallel twin (and the blocked column sums) on a small case, by a threshold of zero."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 7, 5, 3))
    case = (3, 3, 2, 1, 1, 1)
    np.testing.assert_array_equal(run_im2col(cpu, x, case), run_im2col(reference, x, case))
    one = x[..., :1].copy()
    np.testing.assert_array_equal(run_im2col(cpu, one, case), run_im2col(reference, one, case))
    cols = rng.standard_normal(_cols_shape(x.shape, case))
    _close(run_col2im(cpu, cols, x.shape, case), run_col2im(reference, cols, x.shape, case), np.float64, 9)
    out, where = run_max_pool(cpu, x, (3, 3, 2, 2))
    np.testing.assert_array_equal(where, run_max_pool(reference, x, (3, 3, 2, 2))[1])
    _close(run_max_pool_backward(cpu, out, where, x.shape, (3, 3, 2, 2)),
           run_max_pool_backward(reference, out, where, x.shape, (3, 3, 2, 2)), np.float64, 9)
    np.testing.assert_array_equal(run_dropout(cpu, x, 0.4, 1, 2)[1], run_dropout(reference, x, 0.4, 1, 2)[1])
    compare_batch_norm(cpu, np, bn_inputs(rng, 301, 5, np.float64), np.float64)


# --- the CUDA kernels (simulator here: tiny sizes) against the reference --------------------------------------

SIM_X = (2, 5, 4, 3)
SIM_CONV_CASES = [(3, 3, 1, 1, 1, 1), (2, 3, 2, 2, 0, 1)]
SIM_POOL_CASES = [(2, 2, 2, 2), (3, 2, 1, 2)]


def check_cuda_windows(xp: ModuleType, rng: np.random.Generator, x_shape: tuple, dtype: Any, conv_cases: list,
                       pool_cases: list, contiguous: bool = True) -> None:
    """im2col, col2im, max_pool and max_pool_backward of the CUDA set on ``xp`` arrays equal the reference."""
    put = (lambda v: xp.asarray(v.copy())) if contiguous else (lambda v: _strided(xp, v))
    x = rng.standard_normal(x_shape).astype(dtype)
    for case in conv_cases:
        cols = xp.empty(_cols_shape(x_shape, case), dtype)
        gpu.im2col(put(x), *case[2:], cols)
        np.testing.assert_array_equal(_host(cols), run_im2col(reference, x, case))
        dcols = rng.standard_normal(cols.shape).astype(dtype)
        dx = put(np.full(x_shape, np.nan, dtype))
        gpu.col2im(put(dcols), *case[2:], dx)
        _close(dx, run_col2im(reference, dcols, x_shape, case), dtype, case[0] * case[1])
    for case in pool_cases:
        shape = _pool_shape(x_shape, case)
        out, where = put(np.full(shape, np.nan, dtype)), xp.full(shape, -1, np.int32)
        gpu.max_pool(put(x), *case, out, where)
        expected_out, expected_where = run_max_pool(reference, x, case)
        np.testing.assert_array_equal(_host(out), expected_out)
        np.testing.assert_array_equal(_host(where), expected_where)
        dout = rng.standard_normal(shape).astype(dtype)
        dx = put(np.full(x_shape, np.nan, dtype))
        gpu.max_pool_backward(put(dout), where, *case, dx)
        _close(dx, run_max_pool_backward(reference, dout, expected_where, x_shape, case), dtype,
               case[0] * case[1])


def check_cuda_max_pool_activation(xp: ModuleType, rng: np.random.Generator, x_shape: tuple, dtype: Any,
                                   contiguous: bool = True) -> None:
    """The fused max pool + activation and its backward of the CUDA set on ``xp`` arrays equal the reference, for
    every activation they take, with d and without."""
    put = (lambda v: xp.asarray(v.copy())) if contiguous else (lambda v: _strided(xp, v))
    x, b = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(x_shape[-1]).astype(dtype)
    for pool, code in itertools.product(MAX_POOL_ACTIVATION_POOLS, ELEMENTWISE):
        expected = run_max_pool_activation(reference, x, pool, b, code)
        for with_d in (True, False):
            actual = run_max_pool_activation(gpu, put(x), pool, put(b), code, with_d)
            for got, want in zip(actual, expected, strict=True):
                if got is not None:
                    _close(got, want, dtype)
        _, _, d, where = expected
        da = rng.standard_normal(d.shape).astype(dtype)
        dx, db = run_max_pool_activation_backward(gpu, put(da), put(d), xp.asarray(where), pool, x_shape)
        expected_dx, expected_db = run_max_pool_activation_backward(reference, da, d, where, pool, x_shape)
        _close(dx, expected_dx, dtype)
        _close(db, expected_db, dtype, d.size // d.shape[-1])


def check_cuda_dropout(xp: ModuleType, x: np.ndarray, contiguous: bool = True) -> None:
    """CUDA masks and outputs equal the reference's and the CPU's bit for bit; the backward multiplies."""
    put = (lambda v: xp.asarray(v.copy())) if contiguous else (lambda v: _strided(xp, v))
    for rate, seed, step in [(0.0, 0, 0), (0.3, 11, 5), (0.75, 2**63 + 5, 2**33)]:
        out, mask = put(np.full(x.shape, np.nan, x.dtype)), put(np.full(x.shape, np.nan, x.dtype))
        gpu.dropout(put(x), rate, seed, step, out, mask)
        expected_out, expected_mask = run_dropout(reference, x, rate, seed, step)
        np.testing.assert_array_equal(_host(mask), expected_mask)
        np.testing.assert_array_equal(_host(out), expected_out)
        np.testing.assert_array_equal(_host(mask), run_dropout(cpu, x, rate, seed, step)[1])
        dx = put(x)
        gpu.dropout_backward(dx, mask, dx)  # dx is dout
        np.testing.assert_array_equal(_host(dx), x * expected_mask)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_windows(dtype):
    check_cuda_windows(np, np.random.default_rng(10), SIM_X, dtype, SIM_CONV_CASES, SIM_POOL_CASES)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_max_pool_activation(dtype):
    check_cuda_max_pool_activation(np, np.random.default_rng(25), (2, 7, 5, 3), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 5), SIM_X])
def test_cuda_dropout_is_bit_identical_to_reference_and_cpu(dtype, shape):
    check_cuda_dropout(np, np.random.default_rng(11).standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "alias"), [((1, 3), False), ((45, 2), True)])
def test_cuda_batch_norm(dtype, shape, alias):
    """Small, because the simulator runs the block reductions' synchronisations slowly; 45 rows still take two
    partials per column in the first stage."""
    compare_batch_norm(gpu, np, bn_inputs(np.random.default_rng(12), *shape, dtype), dtype, alias)


def test_cuda_column_sums_use_many_threads_per_column():
    """Stage one of a column reduction splits each column's rows over many threads (a device needs them)."""
    chunks = batchnorm_cuda._reduction_chunks(100_000, 16)
    assert chunks * 16 >= min(batchnorm_cuda.REDUCTION_THREADS, 100_000 * 16 // 32)
    assert batchnorm_cuda._reduction_chunks(1, 16) == 1


# --- refusals ------------------------------------------------------------------------------------------------

KERNEL_SETS = {"reference": reference, "cpu": cpu, "cuda": gpu}


@pytest.mark.parametrize("name", KERNEL_SETS)
def test_unknown_activation_codes_are_refused(name):
    kernels = KERNEL_SETS[name]
    z = np.zeros((4, 3))
    assert 99 not in ACTIVATIONS.values()
    with pytest.raises(ValueError, match="unknown activation code 99"):
        kernels.bias_activation(z, np.zeros(3), 99, 0.0, np.empty_like(z), np.empty_like(z))
    with pytest.raises(ValueError, match="unknown activation code -1"):
        kernels.activation_backward(z, z, z, -1, np.empty_like(z), np.empty(3))


@pytest.mark.parametrize("name", KERNEL_SETS)
def test_bad_shapes_and_rates_are_refused(name):
    kernels = KERNEL_SETS[name]
    x = np.zeros((2, 5, 4, 3))
    with pytest.raises(ValueError, match="reaches past"):  # a 3x3 output of 2x2 windows at stride 2 needs 6x6
        kernels.max_pool(x, 2, 2, 2, 2, np.empty((2, 3, 3, 3)), np.empty((2, 3, 3, 3), np.int32))
    with pytest.raises(ValueError, match="reaches past"):
        kernels.max_pool_backward(np.empty((2, 3, 3, 3)), np.zeros((2, 3, 3, 3), np.int32), 2, 2, 2, 2, x)
    pooled = np.empty((2, 3, 3, 3))
    with pytest.raises(ValueError, match="reaches past"):
        kernels.max_pool_activation(x, 2, 2, np.zeros(3), ACTIVATIONS["relu"], 0.0, pooled, pooled, pooled,
                                    np.empty((2, 3, 3, 3), np.int32))
    with pytest.raises(ValueError, match="reaches past"):
        kernels.max_pool_activation_backward(pooled, pooled, np.zeros((2, 3, 3, 3), np.int32), 2, 2, x,
                                             np.empty(3))
    with pytest.raises(ValueError, match="not softmax"):
        kernels.max_pool_activation(x, 2, 2, np.zeros(3), ACTIVATIONS["softmax"], 0.0, pooled[:, :2, :2],
                                    pooled[:, :2, :2], None, np.empty((2, 2, 2, 3), np.int32))
    with pytest.raises(ValueError, match="disagree"):
        kernels.im2col(x, 1, 1, 0, 0, np.empty((2, 3, 2, 3, 3, 4)))
    with pytest.raises(ValueError, match="disagree"):
        kernels.col2im(np.empty((1, 3, 2, 3, 3, 3)), 1, 1, 0, 0, x)
    for rate in (1.0, -0.1):
        with pytest.raises(ValueError, match="dropout rate"):
            kernels.dropout(x, rate, 0, 0, np.empty_like(x), np.empty_like(x))


@pytest.mark.parametrize("name", ["cpu", "cuda"])
def test_argmax_must_be_int32(name):
    x = np.zeros((1, 4, 4, 2))
    with pytest.raises(TypeError, match="argmax must be int32"):
        KERNEL_SETS[name].max_pool(x, 2, 2, 2, 2, np.empty((1, 2, 2, 2)), np.empty((1, 2, 2, 2), np.int64))
    pooled = np.empty((1, 2, 2, 2))
    with pytest.raises(TypeError, match="argmax must be int32"):
        KERNEL_SETS[name].max_pool_activation(x, 2, 2, np.zeros(2), ACTIVATIONS["relu"], 0.0, pooled, pooled, None,
                                              np.empty((1, 2, 2, 2), np.int64))
    with pytest.raises(TypeError, match="argmax must be int32"):
        KERNEL_SETS[name].max_pool_activation_backward(pooled, pooled, np.empty((1, 2, 2, 2), np.int64), 2, 2, x,
                                                       np.empty(2))


# --- compiled for a real device, without one ------------------------------------------------------------------

PTX_SCRIPT = textwrap.dedent("""
    import sys, types
    from numba.cuda.cudadrv import nvvm
    try:
        nvvm.NVVM()
    except Exception as error:
        print(f"NVVM unavailable: {error}")
        sys.exit(3)
    import numba.cuda.api, numba.cuda.dispatcher
    from numba import cuda, float32, float64
    # device functions ask the driver for the compute capability; without a GPU, answer for it
    device = types.SimpleNamespace(compute_capability=(8, 0))
    numba.cuda.api.get_current_device = numba.cuda.dispatcher.get_current_device = lambda: device
    from xpnet.kernels.cuda_set import CudaKernels  # imports every family's CUDA kernels
    from xpnet.kernels.numba_cuda import CUDA_KERNELS
    for t in (float32, float64):
        for name, kernel in CUDA_KERNELS.items():
            try:
                cuda.compile_ptx(kernel.func, kernel.signature(t), cc=(8, 0))
            except cuda.CudaSupportError as error:  # this Numba wants a driver after all
                print(f"compiling needs a CUDA driver here: {error}")
                sys.exit(3)
            except Exception as error:
                print(f"{name} ({t}): {type(error).__name__}: {error}")
                sys.exit(1)
""")


def test_every_cuda_kernel_compiles_for_a_device():
    """The simulator runs kernels as Python, so it misses what Numba's CUDA compiler refuses (it refuses
    max(int, int), for one): compile every kernel to PTX for compute capability 8.0 where NVVM is installed."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", PTX_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=300, cwd=Path(__file__).parent)
    if result.returncode == 3:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr


# --- a real GPU: CuPy arrays, larger, non-contiguous ----------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("contiguous", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_windows(dtype, contiguous):
    import cupy

    conv_cases = CONV_CASES + [(5, 5, 2, 2, 2, 2)]
    check_cuda_windows(cupy, np.random.default_rng(20), (8, 28, 27, 16), dtype, conv_cases, POOL_CASES,
                       contiguous)


@pytest.mark.gpu
@pytest.mark.parametrize("contiguous", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_max_pool_activation(dtype, contiguous):
    import cupy

    check_cuda_max_pool_activation(cupy, np.random.default_rng(26), (8, 28, 27, 16), dtype, contiguous)


@pytest.mark.gpu
@pytest.mark.parametrize("contiguous", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_gpu_average_pools(dtype, contiguous, case):
    import cupy

    rng = np.random.default_rng(23)
    x = rng.standard_normal((8, 28, 27, 16)).astype(dtype)
    dout = rng.standard_normal(_pool_shape(x.shape, case)).astype(dtype)
    dglobal = rng.standard_normal((8, 16)).astype(dtype)
    put = (lambda v: cupy.asarray(v)) if contiguous else (lambda v: _strided(cupy, v))
    actual = run_avg_pools(gpu, put(x), put(dout), put(dglobal), case)
    for a, e in zip(actual, run_avg_pools(reference, x, dout, dglobal, case), strict=True):
        _close(a, e, dtype, 9)


@pytest.mark.gpu
@pytest.mark.parametrize("contiguous", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_dropout_is_bit_identical_to_reference_and_cpu(dtype, contiguous):
    import cupy

    rng = np.random.default_rng(21)
    for shape in [(1,), (1023, 10), (16, 28, 28, 32)]:
        check_cuda_dropout(cupy, rng.standard_normal(shape).astype(dtype), contiguous)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (4096, 16), (100_352, 32), (513, 1000)])
def test_gpu_batch_norm(dtype, shape):
    import cupy

    values = bn_inputs(np.random.default_rng(22), *shape, dtype)
    compare_batch_norm(gpu, cupy, values, dtype)
    compare_batch_norm(gpu, cupy, values, dtype, alias=True)


@pytest.mark.gpu
def test_gpu_reference_runs_on_cupy():
    """The reference itself works on CuPy arrays and agrees with its NumPy run."""
    import cupy

    rng = np.random.default_rng(23)
    x = rng.standard_normal((4, 9, 8, 5))
    case = (3, 3, 2, 2, 1, 1)
    np.testing.assert_array_equal(_host(run_im2col(reference, cupy.asarray(x), case)), run_im2col(reference, x, case))
    out, where = run_max_pool(reference, cupy.asarray(x), (2, 2, 2, 2))
    np.testing.assert_array_equal(_host(where), run_max_pool(reference, x, (2, 2, 2, 2))[1])
    np.testing.assert_array_equal(_host(run_dropout(reference, cupy.asarray(x), 0.5, 1, 2)[1]),
                                  run_dropout(reference, x, 0.5, 1, 2)[1])
    compare_batch_norm(reference, cupy, bn_inputs(rng, 300, 7, np.float64), np.float64)
