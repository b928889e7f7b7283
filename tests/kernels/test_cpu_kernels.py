"""Every fused CPU kernel equals its plain-NumPy reference: both dtypes, odd sizes, non-contiguous inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_conformance import CASES as KERNEL_CASES
from xpnet.kernels import ACTIVATIONS, SOFTMAX
from xpnet.kernels.convolution import cpu as convolution_cpu
from xpnet.kernels.products import cpu as products_cpu
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

cpu = CpuKernels()
reference = ReferenceKernels()

SHAPES = [(1, 1), (7, 1), (1, 7), (1023, 3), (4096, 10)]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _matrix(rng, shape, dtype, contiguous):
    """A random matrix, or a strided view of a bigger one when not ``contiguous``."""
    if contiguous:
        return rng.standard_normal(shape).astype(dtype)
    big = rng.standard_normal((shape[0], 2 * shape[1])).astype(dtype)
    return big[:, ::2]


def _one_hot(rng, n, m, dtype):
    y = np.zeros((n, m), dtype=dtype)
    y[np.arange(n), rng.integers(0, m, n)] = 1
    return y


def _close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_bias_activation_and_backward(dtype, shape, contiguous, activation):
    rng = np.random.default_rng(sum(shape))
    code = ACTIVATIONS[activation]
    z = _matrix(rng, shape, dtype, contiguous)
    b = rng.standard_normal(shape[1]).astype(dtype)
    results = {}
    for name, kernels in (("fused", cpu), ("reference", reference)):
        zz, a, d = z.copy(), np.empty(shape, dtype), np.empty(shape, dtype)
        kernels.bias_activation(zz, b, code, 0.05, a, d)
        da = rng.standard_normal(shape).astype(dtype) if name == "fused" else results["fused"][3]
        dz, db = np.empty(shape, dtype), np.empty(shape[1], dtype)
        kernels.activation_backward(da, d, a, code, dz, db)
        results[name] = (zz, a, d, da, dz, db)
    fused, ref = results["fused"], results["reference"]
    for index in (0, 1, 4, 5) if code == SOFTMAX else range(6):
        _close(fused[index], ref[index], dtype)
    assert fused[1].dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("contiguous", [True, False])
def test_bias_gradient(dtype, shape, contiguous):
    dz = _matrix(np.random.default_rng(sum(shape)), shape, dtype, contiguous)
    fused, expected = np.full(shape[1], np.nan, dtype), np.full(shape[1], np.nan, dtype)
    cpu.bias_gradient(dz, fused)
    reference.bias_gradient(dz, expected)
    _close(fused, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_derivative_is_optional_and_backward_may_work_in_place(dtype):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((9, 5)).astype(dtype)
    a1, a2, d = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    cpu.bias_activation(z.copy(), np.zeros(5, dtype), ACTIVATIONS["tanh"], 0.0, a1, None)
    cpu.bias_activation(z.copy(), np.zeros(5, dtype), ACTIVATIONS["tanh"], 0.0, a2, d)
    np.testing.assert_array_equal(a1, a2)
    da = rng.standard_normal(z.shape).astype(dtype)
    expected, db_expected = np.empty_like(z), np.empty(5, dtype)
    reference.activation_backward(da, d, a2, ACTIVATIONS["tanh"], expected, db_expected)
    db = np.empty(5, dtype)
    cpu.activation_backward(da, d, a2, ACTIVATIONS["tanh"], da, db)  # dz aliases da
    _close(da, expected, dtype)
    _close(db, db_expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (7, 3), (1023, 10), (4096, 10)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_fused_losses(dtype, shape, contiguous):
    rng = np.random.default_rng(shape[0])
    n, m = shape
    z = _matrix(rng, shape, dtype, contiguous) * 3
    y_onehot = _one_hot(rng, n, m, dtype)
    y_binary = (rng.random(shape) > 0.5).astype(dtype)
    outputs = {}
    for name, kernels in (("fused", cpu), ("reference", reference)):
        softmax_a, sigmoid_a = np.empty(shape, dtype), np.empty(shape, dtype)
        kernels.bias_activation(z.copy(), np.zeros(m, dtype), SOFTMAX, 0.0, softmax_a, None)
        kernels.bias_activation(z.copy(), np.zeros(m, dtype), ACTIVATIONS["sigmoid"], 0.0, sigmoid_a, None)
        stats = np.zeros((3, 2))
        dz = np.empty((3, n, m), dtype)
        kernels.softmax_cross_entropy(z, softmax_a, y_onehot, dz[0], stats[0])
        kernels.sigmoid_binary_cross_entropy(z, sigmoid_a, y_binary, dz[1], stats[1])
        kernels.squared_error(sigmoid_a, y_binary, dz[2], stats[2], 0.3, 0.7)
        outputs[name] = (dz, stats)
    _close(outputs["fused"][0], outputs["reference"][0], dtype)
    stats_tolerance = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(outputs["fused"][1], outputs["reference"][1], rtol=stats_tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 7, 1023, 40960])
@pytest.mark.parametrize("contiguous", [True, False])
def test_optimizer_updates(dtype, size, contiguous):
    rng = np.random.default_rng(size)

    def vector():
        data = rng.standard_normal(size * (1 if contiguous else 3)).astype(dtype)
        return data if contiguous else data[::3]

    p, g, m, v = vector(), vector(), vector(), np.abs(vector())
    for name, args in (
        ("sgd_update", (0.1,)),
        ("momentum_update", (0.1, 0.9)),
        ("adam_update", (0.01, 0.9, 0.999, 1e-8, 0.3)),
    ):
        state = {"fused": [p.copy(), m.copy(), v.copy()], "reference": [p.copy(), m.copy(), v.copy()]}
        for kind, kernels in (("fused", cpu), ("reference", reference)):
            pp, mm, vv = state[kind]
            moments = {"sgd_update": (), "momentum_update": (mm,), "adam_update": (mm, vv)}[name]
            getattr(kernels, name)(pp, g, *moments, *args)
        for fused, ref in zip(state["fused"], state["reference"], strict=True):
            _close(fused, ref, dtype)
        assert not np.array_equal(state["fused"][0], p), f"{name} did not change the parameters"


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_rows(dtype):
    rng = np.random.default_rng(3)
    src = rng.standard_normal((1023, 7)).astype(dtype)
    idx = rng.permutation(1023)[:129]
    out = np.empty((129, 7), dtype)
    cpu.gather_rows(src, idx, out)
    np.testing.assert_array_equal(out, src[idx])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_parallel_backward_sums_the_bias_gradient_over_row_blocks(activation, parallel_kernels):
    rng = np.random.default_rng(5)
    shape = (137, 11)  # rows do not divide evenly into the blocks
    a, d, da = (rng.random(shape) for _ in range(3))
    results = []
    for kernels in (cpu, reference):
        dz, db = np.empty(shape), np.empty(shape[1])
        kernels.activation_backward(da, d, a, ACTIVATIONS[activation], dz, db)
        results.append((dz, db))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_stays_finite_and_exact_for_extreme_logits(dtype):
    z = np.array([[-80.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 80.0]], dtype=dtype)
    y = np.array([[0, 1, 0, 1, 1, 0, 1]], dtype=dtype)
    stats = {}
    for name, kernels in (("fused", cpu), ("reference", reference)):
        a = np.empty_like(z)
        kernels.bias_activation(z.copy(), np.zeros(7, dtype), ACTIVATIONS["sigmoid"], 0.0, a, None)
        stats[name] = np.zeros(2)
        kernels.sigmoid_binary_cross_entropy(z, a, y, np.empty_like(z), stats[name])
    assert np.isfinite(stats["fused"]).all()
    np.testing.assert_allclose(stats["fused"], stats["reference"], rtol=1e-6)


def _chunked_product_cases(fewest: int) -> list[tuple[int, int, int, bool]]:
    """(rows, K, F, chunked) around the switch, with ``CHUNK_PRODUCT`` set to 128 * ``fewest``: chunks of 128 rows
    for a K x F of ``fewest`` entries, and too few rows per chunk for a wider one."""
    return [
        (293, 4, fewest // 4, True),  # two full chunks of 128 rows and a last one of 37
        (256, 4, fewest // 4, True),  # exactly two chunks
        (255, 4, fewest // 4, False),  # fewer rows than two chunks: one product
        (301, 1, fewest, True),
        (4001, 16, 16, False),  # 256 entries: chunks of fewer rows than the fewest worth it
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize(("rows", "k", "f", "chunked"), _chunked_product_cases(products_cpu.PRODUCT_MIN_ROWS))
def test_product_in_row_chunks_equals_one_product(monkeypatch, dtype, contiguous, rows, k, f, chunked):
    monkeypatch.setattr(products_cpu, "CHUNK_PRODUCT", 128 * products_cpu.PRODUCT_MIN_ROWS)
    assert bool(products_cpu.chunk_rows(rows, k, f, products_cpu.PRODUCT_MIN_ROWS)) == chunked
    rng = np.random.default_rng(rows + k)
    a = _matrix(rng, (rows, k), dtype, contiguous)
    b = _matrix(rng, (f, k), dtype, contiguous).T  # a layer's W.T: not C-contiguous
    out, expected = np.full((rows, f), np.nan, dtype)[:, ::-1], np.empty((rows, f), dtype)
    cpu.product(a, b, out)
    reference.product(a, b, expected)
    np.testing.assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype] * np.sqrt(k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "k", "f", "chunked"), _chunked_product_cases(products_cpu.WEIGHT_GRADIENT_MIN_ROWS))
def test_weight_gradient_in_chunks_equals_one_product(monkeypatch, dtype, rows, k, f, chunked):
    monkeypatch.setattr(products_cpu, "CHUNK_PRODUCT", 128 * products_cpu.WEIGHT_GRADIENT_MIN_ROWS)
    assert bool(products_cpu.chunk_rows(rows, k, f, products_cpu.WEIGHT_GRADIENT_MIN_ROWS)) == chunked
    rng = np.random.default_rng(rows + k)
    patches, dz = rng.standard_normal((rows, k)).astype(dtype), rng.standard_normal((rows, f)).astype(dtype)
    out, expected = np.full((k, f), np.nan, dtype), np.empty((k, f), dtype)
    cpu.weight_gradient(patches, dz, out)
    reference.weight_gradient(patches, dz, expected)
    _close(out, expected, dtype)
    np.testing.assert_allclose(out, patches.astype(np.float64).T @ dz, rtol=TOL[dtype], atol=TOL[dtype] * rows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "rows", "k", "f"), [
    ("first", 64 * 28 * 28, 9, 8),  # 3x3 windows of one channel, 8 filters, batch 64 of 28 x 28
    ("second", 64 * 14 * 14, 72, 32),  # 3x3 windows of 8 channels, 32 filters, batch 64 of 14 x 14
])
def test_the_quick_cnn_convolutions_products_at_their_training_size(dtype, name, rows, k, f):
    """The shapes the chunks exist for, each product chunked, with a strided dz and a layer's transposed W."""
    assert products_cpu.chunk_rows(rows, k, f, products_cpu.WEIGHT_GRADIENT_MIN_ROWS), name
    rng = np.random.default_rng(1)
    patches, w = rng.standard_normal((rows, k)).astype(dtype), rng.standard_normal((k, f)).astype(dtype)
    dz = _matrix(rng, (rows, f), dtype, contiguous=False)
    exact = {"z": patches.astype(np.float64) @ w, "dx": dz.astype(np.float64) @ w.T.astype(np.float64),
             "dW": patches.astype(np.float64).T @ dz}
    for kernels in (cpu, reference):
        z, dx, dw = np.empty((rows, f), dtype), np.empty((rows, k), dtype), np.empty((k, f), dtype)
        kernels.product(patches, w, z)
        kernels.product(dz, w.T, dx)
        kernels.weight_gradient(patches, dz, dw)
        for result, key, terms in ((z, "z", k), (dx, "dx", f), (dw, "dW", rows)):
            # a sum of ``terms`` products: round-off grows with its square root
            np.testing.assert_allclose(result, exact[key], rtol=TOL[dtype], atol=2 * TOL[dtype] * np.sqrt(terms))


@pytest.mark.parametrize(("kernel", "shapes", "named"), [
    ("product", ((5, 3), (4, 2), (5, 2)), "a (rows, K), b (K, F), out (rows, F), not (5, 3), (4, 2), (5, 2)"),
    ("product", ((5,), (3, 2), (5, 2)), "not (5,), (3, 2), (5, 2)"),
    ("product", ((5, 3), (3, 2), (5, 3)), "out must be (a's rows, b's columns)"),
    ("weight_gradient", ((5, 3), (4, 2), (3, 2)), "the two inputs must have the same rows"),
    ("weight_gradient", ((5, 3), (5, 2), (2, 3)),
     "patches (rows, K), dz (rows, F), out (K, F), not (5, 3), (5, 2), (2, 3)"),
])
def test_the_products_refuse_shapes_that_disagree_and_name_them(kernel, shapes, named):
    for kernels in (cpu, reference):
        with pytest.raises(ValueError, match=re.escape(named)):
            getattr(kernels, kernel)(*(np.zeros(shape, np.float32) for shape in shapes))


CONVOLUTION_CASES = [  # x (N, H, W, C), window, strides, pads, filters
    ((5, 7, 6, 3), (3, 3), (1, 1), (1, 1), 5),
    ((3, 9, 8, 2), (3, 2), (2, 1), (0, 1), 4),
    ((4, 6, 5, 1), (3, 3), (1, 2), (1, 0), 3),  # one channel: the im2col by taps
]


def _window_rows(x_shape, window, strides, pads) -> tuple[int, int]:
    return tuple((size + 2 * pad - k) // stride + 1
                 for size, k, stride, pad in zip(x_shape[1:3], window, strides, pads, strict=True))


def _nan_array(shape, dtype, contiguous):
    """An array of NaN, or a strided view of a bigger one when not ``contiguous``."""
    if contiguous:
        return np.full(shape, np.nan, dtype)
    return np.full((*shape[:-1], 2 * shape[-1]), np.nan, dtype)[..., ::2]


def _blocked_kernels(monkeypatch, request, parallel: bool, chunk_product: int, fewest: int,
                     names: tuple[str, ...]) -> list[str]:
    """Set the convolution kernels' chunks (``CHUNK_PRODUCT``) and the fewest rows worth one, the parallel twins
    when ``parallel``, and record which of the by-blocks kernels ``names`` run: the list they append to."""
    if parallel:
        request.getfixturevalue("parallel_kernels")
    monkeypatch.setattr(convolution_cpu, "CHUNK_PRODUCT", chunk_product)
    monkeypatch.setattr(convolution_cpu, "PRODUCT_MIN_ROWS", fewest)
    monkeypatch.setattr(convolution_cpu, "WEIGHT_GRADIENT_MIN_ROWS", fewest)
    ran: list[str] = []
    for name in names:
        kernel = getattr(convolution_cpu, name)
        monkeypatch.setattr(convolution_cpu, name, lambda *args, kernel=kernel, name=name: (ran.append(name),
                                                                                            kernel(*args)))
    return ran


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("parallel", "contiguous"), [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize(("chunk_rows", "fewest"), [
    (1, 1), (7, 1), (40, 1), (10_000, 1),  # by blocks: several chunks an image, one, several images a block
    (7, 8),  # chunks too narrow to be worth it: the windows and products kernels in turn
])
@pytest.mark.parametrize(("x_shape", "window", "strides", "pads", "filters"), CONVOLUTION_CASES)
def test_convolution_by_blocks_of_images_equals_the_reference(monkeypatch, request, dtype, parallel, contiguous,
                                                              chunk_rows, fewest, x_shape, window, strides, pads,
                                                              filters):
    """The fused forward and backward passes against im2col, the products and col2im in turn, with the blocks and
    chunks set by ``CHUNK_PRODUCT`` and the fewest rows worth a chunk: odd sizes, strides and pads, a last block of
    fewer images, strided outputs."""
    k = window[0] * window[1] * x_shape[3]
    ran = _blocked_kernels(monkeypatch, request, parallel, chunk_rows * k * filters, fewest,
                           ("_convolution_kernel", "_convolution_backward_kernel"))
    oh, ow = _window_rows(x_shape, window, strides, pads)
    per_block, chunk, chunks = convolution_cpu.blocking(x_shape[0], oh * ow, k, filters)
    assert chunk == chunk_rows and (per_block == 1 or chunks == 1)
    rng = np.random.default_rng(chunk_rows)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal((k, filters)).astype(dtype)
    dz = rng.standard_normal((x_shape[0] * oh * ow, filters)).astype(dtype)
    results = []
    for kernels in (cpu, reference):
        cols = _nan_array((x_shape[0], oh, ow, *window, x_shape[3]), dtype, contiguous)
        out, dx = _nan_array(dz.shape, dtype, contiguous), _nan_array(x_shape, dtype, contiguous)
        dw = _nan_array(w.shape, dtype, contiguous)
        kernels.convolution(x, w, *strides, *pads, cols, out)
        results.append([cols.copy(), out])
        kernels.convolution_backward(cols, dz, w, *strides, *pads, dw, dx)
        results[-1] += [cols, dw, dx]
    assert len(ran) == (2 if chunk_rows >= fewest else 0)
    for actual, expected in zip(*results, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * 10)


def test_a_convolution_with_weights_too_wide_for_useful_chunks_runs_the_kernels_in_turn():
    """576 x 128 weights (a Keras tutorial's second convolution) make chunks of 3 rows: such passes run as the windows
    and products kernels in turn, whose product is one BLAS call; the quick CNN's run by blocks."""
    assert convolution_cpu.blocking(32, 11 * 11, 576, 128)[1] < convolution_cpu.PRODUCT_MIN_ROWS
    for k, f, image_rows in ((9, 8, 28 * 28), (72, 32, 14 * 14)):
        chunk = convolution_cpu.blocking(64, image_rows, k, f)[1]
        assert chunk >= convolution_cpu.WEIGHT_GRADIENT_MIN_ROWS >= convolution_cpu.PRODUCT_MIN_ROWS


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("parallel", "contiguous"), [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize(("chunk_rows", "fewest"), [(1, 1), (10_000, 1), (7, 8)])
@pytest.mark.parametrize(("case", "pool", "need_dx"), [
    (0, (2, 2), True), (0, (3, 2), False), (1, (3, 2), True),
    (2, (2, 2), False),  # one channel, no dL/dx: a first layer, as the quick CNN's
])
def test_pooled_convolution_by_blocks_of_images_equals_the_reference(monkeypatch, request, dtype, parallel,
                                                                     contiguous, chunk_rows, fewest, case, pool,
                                                                     need_dx):
    """The convolution with its max pool, bias and activation taken block by block (and the backward, with dx or
    the weight gradient alone) against the convolution and pooling references in turn: blocks and chunks set as in
    the convolution's test, pools that leave a margin, strided outputs, and the kernels in turn where chunks are too
    narrow."""
    x_shape, window, strides, pads, filters = CONVOLUTION_CASES[case]
    k = window[0] * window[1] * x_shape[3]
    names = ("_pooled_convolution_kernel", "_pooled_convolution_backward_kernel")
    ran = _blocked_kernels(monkeypatch, request, parallel, chunk_rows * k * filters, fewest, names)
    oh, ow = _window_rows(x_shape, window, strides, pads)
    pooled = (x_shape[0], oh // pool[0], ow // pool[1], filters)
    rng = np.random.default_rng(chunk_rows + 10 * pool[0])
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal((k, filters)).astype(dtype)
    b, da = rng.standard_normal(filters).astype(dtype), rng.standard_normal(pooled).astype(dtype)
    results = []
    for kernels in (cpu, reference):
        cols = _nan_array((x_shape[0], oh, ow, *window, x_shape[3]), dtype, contiguous)
        conv = _nan_array((x_shape[0], oh, ow, filters), dtype, contiguous)
        z, a, d = (_nan_array(pooled, dtype, contiguous) for _ in range(3))
        argmax = np.full(pooled, -1, np.int32)
        kernels.pooled_convolution(x, w, *strides, *pads, cols, conv, *pool, b, ACTIVATIONS["leaky_relu"], 0.1, z, a,
                                   d, argmax)
        results.append([cols.copy(), conv.copy(), z, a, d, argmax])
        db, dw = _nan_array((filters,), dtype, contiguous), _nan_array(w.shape, dtype, contiguous)
        dx = _nan_array(x_shape, dtype, contiguous) if need_dx else None
        kernels.pooled_convolution_backward(da, d, argmax, *pool, cols, w, *strides, *pads, conv, db, dw, dx)
        results[-1] += [cols, conv, db, dw] + ([dx] if need_dx else [])
    assert ran == (list(names) if chunk_rows >= fewest else [])
    for actual, expected in zip(*results, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * 10)


PLANNED = {
    "pooled_convolution": ((0, 1, 10), (6, 7, 13, 14, 15, 16)),
    "pooled_convolution_backward": ((0, 1, 2, 5, 6), (5, 11, 12, 13, 14)),
}
"""Kernel -> (its inputs, its outputs) by position in the conformance case's arguments (cols: read, then written)."""


def _strided(a: np.ndarray) -> np.ndarray:
    """A non-contiguous view holding a copy of ``a``."""
    view = np.empty((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)[..., ::2]
    view[...] = a
    return view


@pytest.mark.parametrize("name", sorted(PLANNED))
def test_a_planned_kernel_runs_on_its_arguments_current_values(name: str) -> None:
    """A plan prepares once (scratch, contiguous copies of strided inputs, scratch for strided outputs), and each of
    its calls computes what the kernel computes on the arrays' values of that moment."""
    rng = np.random.default_rng(8)
    inputs, outputs = PLANNED[name]
    args = KERNEL_CASES[name](rng, np.float64)[0]
    args[inputs[0]], args[outputs[-1]] = _strided(args[inputs[0]]), _strided(args[outputs[-1]])
    prepared = CpuKernels.plans[name](*args)
    for _ in range(2):
        for i in inputs:
            args[i][...] = rng.integers(0, 4, args[i].shape) if args[i].dtype == np.int32 else rng.standard_normal(
                args[i].shape)
        expected = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        getattr(cpu, name)(*expected)
        prepared()
        for i in outputs:
            np.testing.assert_array_equal(args[i], expected[i])
