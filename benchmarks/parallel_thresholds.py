"""Calibrate each CPU kernel's serial/parallel switch: ``python -m benchmarks.parallel_thresholds [--threads 2]``.

Times every serial/parallel pair of ``numba_cpu.TWINS`` (float32, the training dtype) at sizes of its first
argument from 1e3 to 1e7 elements, serial and parallel interleaved, minimum of the rounds (the least disturbed by
other work on the machine), and prints the crossover of each: the smallest size from which the parallel twin is
faster at every larger size measured ("never" when it never is). The chosen thresholds are kept as constants
beside the kernels (``*_PARALLEL_MIN`` in ``kernels/<family>/cpu.py``), with the machine and date; run this when
the machine is otherwise idle (the load average is printed) and copy them by hand. ``--json PATH`` also writes
every timing.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from xpnet.kernels import RELU, sets  # noqa: F401  (sets imports every family, which registers the twins)
from xpnet.kernels.convolution import cpu as convolution
from xpnet.kernels.numba_cpu import TWINS, row_blocks
from xpnet.kernels.products import cpu as products
from xpnet.kernels.scalar import dropout_constants, shift_constants

from benchmarks.timing import Candidate, interleave, load_average, log
from xpnet.fileio import atomic_write

SIZES = tuple(int(10 ** (e / 2)) for e in range(6, 15))
"""1e3 to 1e7 elements, half a decade apart."""
F32 = np.float32
TINY = float(np.finfo(F32).tiny)
"""The optimizers' floor for their moments (``kernels.scalar.normal_or_zero``)."""
CHANNELS = 8


def _images(elements: int, rng: np.random.Generator, channels: int = CHANNELS) -> np.ndarray:
    """About ``elements`` float32 values as NHWC images of at most 28 x 28 pixels."""
    side = max(2, min(28, math.isqrt(max(1, elements // channels))))
    n = max(1, round(elements / (side * side * channels)))
    return rng.standard_normal((n, side, side, channels)).astype(F32)


def _rows(elements: int, rng: np.random.Generator, width: int) -> np.ndarray:
    return rng.standard_normal((max(1, round(elements / width)), width)).astype(F32)


def _conv(n: int, rng: np.random.Generator) -> tuple:
    """A 3x3 same-padded window: cols of about ``n`` elements (nine per input element)."""
    x = _images(n // 9, rng)
    cols = np.empty((*x.shape[:3], 3, 3, x.shape[3]), F32)
    return cols, x, 1, 1, 1, 1


def _col2im(n: int, rng: np.random.Generator) -> tuple:
    cols, x, *window = _conv(n, rng)
    return rng.standard_normal(cols.shape).astype(F32), np.empty_like(x), *window


def _pool(n: int, rng: np.random.Generator) -> tuple:
    """A 2x2 pool: the output of about ``n`` elements, its input four times as many."""
    x = _images(4 * n, rng)
    out = np.empty((x.shape[0], x.shape[1] // 2, x.shape[2] // 2, x.shape[3]), F32)
    return out, x


def _max_pool(n: int, rng: np.random.Generator) -> tuple:
    out, x = _pool(n, rng)
    return out, np.empty(out.shape, np.int32), x, 2, 2, 2, 2


def _max_pool_activation(n: int, rng: np.random.Generator) -> tuple:
    """The fused 2x2 pool + bias + ReLU: z, a, d and argmax of about ``n`` elements each."""
    z, x = _pool(n, rng)
    return (z, np.empty_like(z), np.empty_like(z), np.empty(z.shape, np.int32), x,
            rng.standard_normal(CHANNELS).astype(F32), RELU, 0.0, 2, 2)


def _pool_gradient(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """dx of about ``n`` elements and the 2x2 pool's output gradient."""
    out, x = _pool(n // 4, rng)
    return np.empty_like(x), rng.standard_normal(out.shape).astype(F32)


def _max_pool_backward(n: int, rng: np.random.Generator) -> tuple:
    dx, dout = _pool_gradient(n, rng)
    return dx, dout, rng.integers(0, 4, dout.shape).astype(np.int32), 2, 2, 2, 2


def _max_pool_activation_backward(n: int, rng: np.random.Generator) -> tuple:
    """Its backward: dx of about ``n`` elements."""
    dx, da = _pool_gradient(n, rng)
    windows = da.size // CHANNELS
    return (dx, da, rng.random(da.shape).astype(F32), rng.integers(0, 4, da.shape).astype(np.int32), 2, 2,
            np.empty(CHANNELS, F32), np.empty((row_blocks(windows), CHANNELS), F32))


def _avg_pool_backward(n: int, rng: np.random.Generator) -> tuple:
    return (*_pool_gradient(n, rng), 2, 2, 2, 2)


def _pixels(n: int, rng: np.random.Generator) -> np.ndarray:
    x = _images(n, rng)
    return x.reshape(x.shape[0], -1, x.shape[3])


def _dropout(n: int, rng: np.random.Generator) -> tuple:
    x = _rows(n, rng, 128)
    key, threshold, scale = dropout_constants(1, 2, 0.25, F32)
    return np.empty_like(x), x, np.empty_like(x), key, threshold, scale


def _shift(n: int, rng: np.random.Generator) -> tuple:
    x = _images(n, rng)
    key, span_h, span_w = shift_constants(1, 2, 3, 3)
    return np.empty_like(x), x, key, span_h, span_w, 3, 3, 1


def _bias_activation(n: int, rng: np.random.Generator) -> tuple:
    z = _rows(n, rng, 32)
    return z, rng.standard_normal(32).astype(F32), RELU, 0.0, np.empty_like(z), np.empty_like(z)


def _activation_backward(n: int, rng: np.random.Generator) -> tuple:
    dz = _rows(n, rng, 32)
    return dz, dz.copy(), dz.copy(), dz.copy(), RELU, np.empty(32, F32), np.empty((row_blocks(len(dz)), 32), F32)


def _sums(n: int, rng: np.random.Generator, other: bool) -> tuple:
    x = _rows(n, rng, CHANNELS)
    return x, (x.copy() if other else None), np.empty((row_blocks(len(x)), CHANNELS)), np.empty(CHANNELS)


def _deviations(n: int, rng: np.random.Generator) -> tuple:
    x = _rows(n, rng, CHANNELS)
    return x, np.zeros(CHANNELS), np.empty((row_blocks(len(x)), CHANNELS)), np.empty(CHANNELS)


def _channel_vectors(k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.random(CHANNELS).astype(F32) + F32(0.5) for _ in range(k)]


def _normalise(n: int, rng: np.random.Generator) -> tuple:
    x = _rows(n, rng, CHANNELS)
    return (np.empty_like(x), np.empty_like(x), x, *_channel_vectors(4, rng))


def _batch_norm_eval(n: int, rng: np.random.Generator) -> tuple:
    x = _rows(n, rng, CHANNELS)
    return (np.empty_like(x), x, *_channel_vectors(4, rng), F32(1e-3))


def _batch_norm_dx(n: int, rng: np.random.Generator) -> tuple:
    x = _rows(n, rng, CHANNELS)
    scale, db, dg = _channel_vectors(3, rng)
    return np.empty_like(x), x, x.copy(), scale, F32(len(x)), db, dg


def _loss(n: int, rng: np.random.Generator, squared: bool) -> tuple:
    z = _rows(n, rng, 10)
    a = np.abs(z) / np.abs(z).sum(axis=1, keepdims=True)
    y = np.eye(10, dtype=F32)[rng.integers(0, 10, len(z))]
    if squared:
        return a, y, np.empty_like(a), np.zeros(2), 0.1, 0.5
    return z, a, y, np.empty_like(z), np.zeros(2)


def _vectors(n: int, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    return [rng.standard_normal(n).astype(F32) for _ in range(k)]


def _regularized(n: int, rng: np.random.Generator, k: int, positive: tuple[int, ...] = ()) -> list[np.ndarray]:
    """``k`` parameter-sized vectors (those at ``positive`` made non-negative: second moments), then the decay mask
    and the squared gradient norm that the regularised updates read."""
    vectors = [np.abs(v) if i in positive else v for i, v in enumerate(_vectors(n, rng, k))]
    return [*vectors, (rng.random(n) < 0.8).astype(F32), np.array([4.0])]


class FreshBatches:
    """An argument that is a new one at every call: the next of ``batches`` prepared ones, in turn."""

    def __init__(self, batches: np.ndarray) -> None:
        self.batches, self.calls = batches, 0

    def next(self) -> np.ndarray:
        self.calls += 1
        return self.batches[self.calls % len(self.batches)]


TRAINING_ROWS = 60_000
"""MNIST's training set: the source a batch is gathered from."""


def _gather(n: int, rng: np.random.Generator) -> tuple:
    out = _rows(n, rng, 784)
    src = _rows(4 * out.size, rng, 784)
    return out, src, rng.permutation(len(src))[:len(out)]


def _gather_from_training_set(n: int, rng: np.random.Generator) -> tuple:
    """The calibration's gather: a batch of about ``n`` elements of 784-pixel rows from an MNIST-sized training set,
    new random rows at every call as training draws them (not in cache, as a fixed batch is after its first call)."""
    out = _rows(n, rng, 784)
    src = _rows(TRAINING_ROWS * 784, rng, 784)
    return out, src, FreshBatches(rng.integers(0, TRAINING_ROWS, (1024, len(out))))


def _product_chunks(n: int, rng: np.random.Generator) -> tuple:
    """A second convolution's forward product (3x3 windows of 8 channels, 32 filters) on about n patch entries; the
    first argument, whose size the switch looks at, is the chunks' first rows."""
    a, b = _rows(n, rng, 72), rng.standard_normal((72, 32)).astype(F32)
    starts = np.arange(0, len(a), products.CHUNK_PRODUCT // b.size, dtype=np.int64)
    return starts, a, b, np.empty((len(a), 32), F32)


def _weight_gradient_chunks(n: int, rng: np.random.Generator) -> tuple:
    """The same convolution's weight gradient, its partial results one chunk each, then their sum."""
    starts, patches, _, _ = _product_chunks(n, rng)
    dz = rng.standard_normal((len(patches), 32)).astype(F32)
    return starts, patches, dz, np.empty((len(starts), 72, 32), F32), np.empty((72, 32), F32)


FILTERS = 32


def _convolution(n: int, rng: np.random.Generator) -> tuple:
    """A second convolution's forward pass (3x3 same-padded windows of 8 channels, 32 filters) on an input of about
    ``n`` elements, blocked as the kernel's wrapper blocks it."""
    x = _images(n, rng)
    cols = np.empty((*x.shape[:3], 3, 3, CHANNELS), F32)
    weights = rng.standard_normal((9 * CHANNELS, FILTERS)).astype(F32)
    per_block, chunk, _ = convolution.blocking(len(x), x.shape[1] * x.shape[2], 9 * CHANNELS, FILTERS)
    return x, weights, cols, np.empty((cols.size // (9 * CHANNELS), FILTERS), F32), per_block, chunk, 1, 1, 1, 1


def _convolution_backward(n: int, rng: np.random.Generator) -> tuple:
    """Its backward pass, on windows of about ``n`` elements (nine per input element)."""
    x, weights, cols, out, per_block, chunk, *window = _convolution(n // 9, rng)
    cols[...] = rng.standard_normal(cols.shape)
    chunks = convolution.blocking(len(x), x.shape[1] * x.shape[2], 9 * CHANNELS, FILTERS)[2]
    partial = np.empty((-(-len(x) // per_block) * chunks, *weights.shape), F32)
    return (cols, rng.standard_normal(out.shape).astype(F32), np.ascontiguousarray(weights.T), partial,
            np.empty_like(weights), np.empty_like(x), per_block, chunk, *window)


def _pooled(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The 2x2 max pool of a convolution of ``x`` with ``FILTERS`` filters: z, a, d, argmax (argmax random)."""
    shape = (len(x), x.shape[1] // 2, x.shape[2] // 2, FILTERS)
    z, a, d = (rng.random(shape).astype(F32) for _ in range(3))
    return z, a, d, rng.integers(0, 4, shape).astype(np.int32)


def _pooled_convolution(n: int, rng: np.random.Generator) -> tuple:
    """The same forward pass with its 2x2 max pool, bias and ReLU after it, on an input of about ``n`` elements."""
    x, weights, cols, out, per_block, chunk, *window = _convolution(n, rng)
    return (x, weights, cols, out.reshape(*x.shape[:3], FILTERS), *_pooled(x, rng),
            rng.standard_normal(FILTERS).astype(F32), RELU, 0.0, 2, 2, per_block, chunk, *window)


def _pooled_convolution_backward(n: int, rng: np.random.Generator) -> tuple:
    """Its backward pass, on windows of about ``n`` elements."""
    cols, dz, weights_t, partial, dw, dx, per_block, chunk, *window = _convolution_backward(n, rng)
    z, _, d, argmax = _pooled(dx, rng)
    blocks = -(-len(dx) // per_block)
    return (cols, rng.standard_normal(z.shape).astype(F32), d, argmax, 2, 2, dz.reshape(*dx.shape[:3], FILTERS),
            weights_t, np.empty((blocks, FILTERS), F32), np.empty(FILTERS, F32), partial, dw, dx, per_block, chunk,
            *window)


def _hue(n: int, rng: np.random.Generator) -> tuple:
    images = rng.random(_images(n, rng, 3).shape).astype(F32)
    return images, np.zeros((len(images), 16))


CASES: dict[str, Callable[[int, np.random.Generator], tuple]] = {
    "windows.im2col": _conv,
    "windows.col2im": _col2im,
    "pooling.max_pool": _max_pool,
    "pooling.max_pool_backward": _max_pool_backward,
    "pooling.max_pool_activation": _max_pool_activation,
    "pooling.max_pool_activation_backward": _max_pool_activation_backward,
    "pooling.avg_pool": lambda n, rng: (*_pool(n, rng), 2, 2, 2, 2),
    "pooling.avg_pool_backward": _avg_pool_backward,
    "pooling.global_avg_pool": lambda n, rng: (lambda x: (x, np.empty((len(x), x.shape[2]), F32)))(_pixels(n, rng)),
    "pooling.global_avg_pool_backward": lambda n, rng: (lambda x: (x, x[:, 0].copy()))(_pixels(n, rng)),
    "dropout.dropout": _dropout,
    "dropout.dropout_backward": lambda n, rng: (lambda x: (np.empty_like(x), x, x.copy()))(_rows(n, rng, 128)),
    "dropout.random_shift": _shift,
    "activations.bias_activation": _bias_activation,
    "activations.activation_backward": _activation_backward,
    "batchnorm.column_sums_f64": lambda n, rng: _sums(n, rng, True),
    "batchnorm.squared_deviations_f64": _deviations,
    "batchnorm.normalise": _normalise,
    "batchnorm.batch_norm_eval": _batch_norm_eval,
    "batchnorm.batch_norm_dx": _batch_norm_dx,
    "losses.softmax_cross_entropy": lambda n, rng: _loss(n, rng, False),
    "losses.sigmoid_binary_cross_entropy": lambda n, rng: (lambda a: (a[0], F32(0.5) * (a[1] + a[2]), *a[2:]))(
        _loss(n, rng, False)),
    "losses.squared_error": lambda n, rng: _loss(n, rng, True),
    "optimizers.sgd": lambda n, rng: (*_vectors(n, rng, 2), 1e-3),
    "optimizers.momentum": lambda n, rng: (*_vectors(n, rng, 3), 1e-3, 0.9, TINY),
    "optimizers.adam": lambda n, rng: (*_vectors(n, rng, 2), np.zeros(n, F32), np.zeros(n, F32), 1e-3, 0.9, 0.999,
                                       1e-8, 0.5, TINY),
    "optimizers.sgd_regularized": lambda n, rng: (*_regularized(n, rng, 2), 1.0, 1e-3, 1e-4),
    "optimizers.momentum_regularized": lambda n, rng: (*_regularized(n, rng, 3), 1.0, 1e-3, 0.9, 1e-4, 1, TINY),
    "optimizers.adam_regularized": lambda n, rng: (*_regularized(n, rng, 4, positive=(3,)), 1.0, 1e-3, 0.9, 0.999,
                                                   1e-8, 0.5, 1e-4, 1e-5, TINY),
    "optimizers.rmsprop": lambda n, rng: (*_regularized(n, rng, 5, positive=(2,)), 1.0, 1e-3, 0.99, 1e-8, 1e-4, 0.9,
                                          1, TINY),
    "gather.gather_rows": _gather,
    "finite.count_nonfinite": lambda n, rng: (_rows(n, rng, 784), np.zeros(1, np.int64)),
    "products.product_chunks": _product_chunks,
    "products.weight_gradient_chunks": _weight_gradient_chunks,
    "convolution.convolution": _convolution,
    "convolution.convolution_backward": _convolution_backward,
    "convolution.pooled_convolution": _pooled_convolution,
    "convolution.pooled_convolution_backward": _pooled_convolution_backward,
    "hue.hue_histograms": _hue,
}
"""Arguments of each twin at about ``n`` elements of its first argument (the size its switch looks at)."""
CALIBRATION_CASES: dict[str, Callable[[int, np.random.Generator], tuple]] = {
    **CASES, "gather.gather_rows": _gather_from_training_set}
"""What the calibration times: the cases, except where training's arguments are colder than a repeated case's."""


def crossover(rows: list[dict[str, Any]]) -> int | None:
    """The smallest measured size from which the parallel twin is faster at every larger size (None: never)."""
    found = None
    for row in reversed(rows):
        if row["parallel s"] >= row["serial s"]:
            break
        found = row["elements"]
    return found


def _candidate(function: Callable, args: tuple) -> Candidate:
    if not any(isinstance(arg, FreshBatches) for arg in args):
        return Candidate(lambda: function(*args))
    return Candidate(lambda: function(*(arg.next() if isinstance(arg, FreshBatches) else arg for arg in args)))


def calibrate(name: str, rounds: int, min_seconds: float) -> dict[str, Any]:
    """One twin's timings at every size and its crossover."""
    twin, rng, rows = TWINS[name], np.random.default_rng(0), []
    for n in SIZES:
        args = CALIBRATION_CASES[name](n, rng)
        candidates = {variant: _candidate(getattr(twin, variant), args) for variant in ("serial", "parallel")}
        for candidate in candidates.values():
            candidate.calibrate(min_seconds)
        samples = interleave(candidates, rounds)
        rows.append({"elements": int(args[0].size), **{f"{v} s": min(s) for v, s in samples.items()}})
    return {"kernel": name, "threshold": crossover(rows), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="Numba threads of the parallel twins (default 2)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=2e-3, help="length of one timed sample")
    parser.add_argument("--only", nargs="*", default=sorted(CASES), help="kernels to calibrate (family.name)")
    parser.add_argument("--json", type=Path, help="write every timing here too")
    args = parser.parse_args(argv)
    from xpnet import threads

    threads.configure(args.threads)
    log(f"parallel thresholds: {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"load {load_average()}")
    results = []
    for name in args.only:
        result = calibrate(name, args.rounds, args.min_seconds)
        speedups = " ".join(f"{r['elements']:.0e}:{r['serial s'] / r['parallel s']:.2f}" for r in result["rows"])
        print(f"{name:40s} threshold {result['threshold'] or 'never'}  (serial/parallel time: {speedups})",
              flush=True)
        results.append(result)
    log(f"parallel thresholds: load at the end {load_average()}")
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump({"threads": args.threads, "load": load_average(), "kernels": results}, f, indent=1)


if __name__ == "__main__":
    main()
