"""Every fused kernel against its plain-``xp`` reference, on each device: time and achieved memory bandwidth.

Bandwidth counts the bytes a kernel cannot avoid moving (each input read once, each output written once) and is
compared with the device's copy bandwidth, measured by copying one large array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from xpnet.kernels import KERNEL_SETS, RELU, SOFTMAX, hue
from xpnet.kernels.numba_cpu import TWINS

from benchmarks.config import Config
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet.backend import Backend

FULL_SIZES = [10**4, 10**5, 10**6, 10**7, 10**8]
QUICK_SIZES = [10**4, 10**5]
COPY_ELEMENTS = {True: 10**7, False: 10**8}
"""float32 elements copied to measure copy bandwidth (quick, full): far larger than any cache."""
MIN_SAMPLE_SECONDS = {True: 0.002, False: 0.02}
"""Small kernels are called repeatedly until one sample lasts this long."""
HIDDEN_WIDTH = 256
CLASSES = 10
MNIST_PIXELS = 784
IMAGE_SHAPE = (100, 100, 3)
FEATURE_MAP = (28, 28, 16)
"""NHWC feature maps of the convolutional cases (an MNIST-sized layer of 16 channels)."""
CONV_WINDOW = (3, 3)
BN_CHANNELS = 32


@dataclass
class Workload:
    """A kernel's arguments, how many elements its main array has, and the bytes it must move at least."""

    args: tuple
    elements: int
    moved: int


def _normal(backend: Backend, rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    return backend.asarray(rng.standard_normal(shape, dtype=np.float32))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _one_hot(rng: np.random.Generator, rows: int) -> np.ndarray:
    return np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, rows)]


def _bias_relu(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    z, a, d = (_normal(backend, rng, (max(1, n // HIDDEN_WIDTH), HIDDEN_WIDTH)) for _ in range(3))
    return Workload((z, backend.zeros(HIDDEN_WIDTH), RELU, 0.0, a, d), z.size, 4 * z.nbytes)  # z read+written


def _bias_softmax(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    z, a = (_normal(backend, rng, (max(1, n // CLASSES), CLASSES)) for _ in range(2))
    return Workload((z, backend.zeros(CLASSES), SOFTMAX, 0.0, a, None), z.size, 3 * z.nbytes)


def _backward_relu(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    da, d, a, dz = (_normal(backend, rng, (max(1, n // HIDDEN_WIDTH), HIDDEN_WIDTH)) for _ in range(4))
    return Workload((da, d, a, RELU, dz, backend.zeros(HIDDEN_WIDTH)), da.size, 3 * da.nbytes)


def _bias_gradient(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """The column sums of a last layer's dL/dz (rows of ``CLASSES``)."""
    dz = _normal(backend, rng, (max(1, n // CLASSES), CLASSES))
    return Workload((dz, backend.zeros(CLASSES)), dz.size, dz.nbytes)


def _classifier_loss(output: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Workload]:
    """A loss kernel's workload (z, a = output(z), y, dz, stats): reads three arrays, writes one."""

    def build(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
        z = rng.standard_normal((max(1, n // CLASSES), CLASSES), dtype=np.float32)
        y = _one_hot(rng, z.shape[0])
        arrays = [backend.asarray(v) for v in (z, output(z), y, np.empty_like(z))]
        return Workload((*arrays, backend.zeros(2, dtype=np.float64)), z.size, 4 * z.nbytes)

    return build


def _squared_error(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    a, da = (_normal(backend, rng, (max(1, n // CLASSES), CLASSES)) for _ in range(2))
    y = backend.asarray(_one_hot(rng, a.shape[0]))
    return Workload((a, y, da, backend.zeros(2, dtype=np.float64), 1.0, 1.0), a.size, 3 * a.nbytes)


def _optimizer(moments: int, *scalars: float, hyper: bool = False) -> Callable[..., Workload]:
    """An update kernel's workload: p and g, ``moments`` moment vectors (kept >= 0), with ``hyper`` the device
    array ``[lr, step]`` (the ``*_update_hyper`` kernels), then the scalars."""

    def build(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
        p, g = _normal(backend, rng, (n,)), _normal(backend, rng, (n,))
        extra = [backend.asarray(np.abs(rng.standard_normal(n, dtype=np.float32))) for _ in range(moments)]
        if hyper:
            extra.append(backend.asarray(np.array([0.001, 3.0])))
        # p and every moment are read and written, g only read
        return Workload((p, g, *extra, *scalars), n, (3 + 2 * moments) * p.nbytes)

    return build


def _regularized(moments: int, *scalars: float) -> Callable[..., Workload]:
    """A regularised update's workload: p, g, ``moments`` moment vectors (kept >= 0), a decay mask of ones, the
    squared gradient norm (a float64 device scalar), then the scalars (clip first)."""

    def build(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
        p, g, *extra = _optimizer(moments)(backend, rng, n).args
        mask, norm_sq = backend.asarray(np.ones(n, np.float32)), backend.asarray(np.array([4.0]))
        return Workload((p, g, *extra, mask, norm_sq, *scalars), n, (4 + 2 * moments) * p.nbytes)

    return build


def _regularized_rmsprop(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """RMSprop, centred with momentum: three moment vectors."""
    p, g, sq, buf, avg, mask, norm_sq = _regularized(3)(backend, rng, n).args
    sq = avg * avg + abs(sq)  # a mean square is at least the squared mean: the centred variance stays positive
    return Workload((p, g, sq, buf, avg, mask, norm_sq, 1.0, 0.01, 0.99, 1e-8, 1e-4, 0.9, 1), n, 10 * p.nbytes)


def _squared_norm(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    g = _normal(backend, rng, (n,))
    return Workload((g, backend.zeros(1, dtype=np.float64)), n, g.nbytes)


def _max_norm(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    w = _normal(backend, rng, (max(1, n // HIDDEN_WIDTH), HIDDEN_WIDTH))
    return Workload((w, 1.0), w.size, 3 * w.nbytes)  # read twice, written once


def _smoothed_loss(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """The softmax cross-entropy workload with label smoothing 0.1."""
    plain = _classifier_loss(_softmax)(backend, rng, n)
    return Workload((*plain.args, 0.1), plain.elements, plain.moved)


def _gather_rows(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    rows = max(1, n // MNIST_PIXELS)
    src, out = (_normal(backend, rng, (rows, MNIST_PIXELS)) for _ in range(2))
    idx = backend.asarray(rng.permutation(rows))
    return Workload((src, idx, out), src.size, 2 * src.nbytes + idx.nbytes)


def _count_nonfinite(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x = _normal(backend, rng, (max(1, n // MNIST_PIXELS), MNIST_PIXELS))
    return Workload((x, backend.xp.zeros(1, dtype=np.int64)), x.size, x.nbytes)


def _hue_images(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    count = max(1, n // int(np.prod(IMAGE_SHAPE)))
    images = backend.asarray(rng.integers(0, 256, (count, *IMAGE_SHAPE), dtype=np.uint8))
    return Workload((images,), images.size, images.nbytes + count * hue.DEFAULT_BINS * 8)


def _maps(backend: Backend, rng: np.random.Generator, images: int) -> Any:
    return _normal(backend, rng, (images, *FEATURE_MAP))


def _im2col(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """3x3 windows, stride 1, padding 1: cols holds nine copies of the maps."""
    per_image = int(np.prod(FEATURE_MAP)) * int(np.prod(CONV_WINDOW))
    x = _maps(backend, rng, max(1, n // per_image))
    cols = backend.empty((x.shape[0], *FEATURE_MAP[:2], *CONV_WINDOW, FEATURE_MAP[2]))
    return Workload((x, 1, 1, 1, 1, cols), cols.size, x.nbytes + cols.nbytes)


def _col2im(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, *scalars, cols = _im2col(backend, rng, n).args
    cols[...] = _normal(backend, rng, cols.shape)
    return Workload((cols, *scalars, x), cols.size, x.nbytes + cols.nbytes)


def _weight_gradient(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """A first convolution's: 3x3 windows of one channel (9 columns), 8 filters, ``n`` patch rows."""
    rows = max(1, n // int(np.prod(CONV_WINDOW)))
    patches, dz = _normal(backend, rng, (rows, 9)), _normal(backend, rng, (rows, 8))
    return Workload((patches, dz, backend.empty((9, 8))), patches.size, patches.nbytes + dz.nbytes)


def _product(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """A second convolution's forward product: 3x3 windows of 8 channels (72 columns), 32 filters, ``n`` patch
    entries."""
    patches = _normal(backend, rng, (max(1, n // 72), 72))
    out = backend.empty((len(patches), 32))
    return Workload((patches, _normal(backend, rng, (72, 32)), out), patches.size, patches.nbytes + out.nbytes)


def _convolution(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """A convolution's forward pass: the maps' 3x3 windows (stride 1, padding 1), then their product with weights
    for 32 filters; ``n`` window entries."""
    x, *window, cols = _im2col(backend, rng, n).args
    k = int(np.prod(CONV_WINDOW)) * FEATURE_MAP[2]
    out = backend.empty((cols.size // k, 32))
    return Workload((x, _normal(backend, rng, (k, 32)), *window, cols, out), cols.size,
                    x.nbytes + 2 * cols.nbytes + out.nbytes)


def _convolution_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """Its backward pass: the weight gradient, dL/dz @ W.T into the windows and those added back into dL/dx."""
    x, w, *window, cols, out = _convolution(backend, rng, n).args
    cols[...] = _normal(backend, rng, cols.shape)
    dz = _normal(backend, rng, out.shape)
    return Workload((cols, dz, w, *window, backend.empty(w.shape), x), cols.size,
                    3 * cols.nbytes + 2 * dz.nbytes + x.nbytes)


def _pooled_convolution(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """The same forward pass with a 2x2 max pool, bias and ReLU after it, block by block (Conv2D's max_pool)."""
    x, w, *window, cols, out = _convolution(backend, rng, n).args
    conv = out.reshape(*x.shape[:3], out.shape[1])
    shape = (len(x), x.shape[1] // 2, x.shape[2] // 2, out.shape[1])
    z, a, d = (backend.empty(shape) for _ in range(3))
    argmax = backend.zeros(shape, dtype=np.int32)
    return Workload((x, w, *window, cols, conv, 2, 2, _normal(backend, rng, (out.shape[1],)), RELU, 0.0, z, a, d,
                     argmax), cols.size, x.nbytes + 2 * cols.nbytes + 2 * out.nbytes + 3 * z.nbytes + argmax.nbytes)


def _pooled_convolution_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """Its backward pass: dL/dz from the pooled gradient, then the convolution's backward pass."""
    args = _pooled_convolution(backend, rng, n).args
    backend.kernels.pooled_convolution(*args)
    x, w, *window, cols, conv, pool_h, pool_w, b, _, _, z, _, d, argmax = args
    return Workload((_normal(backend, rng, z.shape), d, argmax, pool_h, pool_w, cols, w, *window, conv,
                     backend.empty(b.shape), backend.empty(w.shape), x), cols.size,
                    3 * cols.nbytes + 3 * conv.nbytes + x.nbytes + 3 * z.nbytes)


def _max_pool(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """2x2 windows at stride 2."""
    x = _maps(backend, rng, max(1, n // int(np.prod(FEATURE_MAP))))
    shape = (x.shape[0], FEATURE_MAP[0] // 2, FEATURE_MAP[1] // 2, FEATURE_MAP[2])
    out, argmax = backend.empty(shape), backend.zeros(shape, dtype=np.int32)
    return Workload((x, 2, 2, 2, 2, out, argmax), x.size, x.nbytes + out.nbytes + argmax.nbytes)


def _max_pool_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, *sizes, out, argmax = _max_pool(backend, rng, n).args
    backend.kernels.max_pool(x, *sizes, out, argmax)
    return Workload((out, argmax, *sizes, x), x.size, x.nbytes + out.nbytes + argmax.nbytes)


def _max_pool_activation(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """2x2 windows side by side, then bias + ReLU, writing z, a, d and the argmax."""
    x, *_, out, argmax = _max_pool(backend, rng, n).args
    a, d, b = backend.empty(out.shape), backend.empty(out.shape), _normal(backend, rng, (out.shape[-1],))
    return Workload((x, 2, 2, b, RELU, 0.0, out, a, d, argmax), x.size,
                    x.nbytes + 3 * out.nbytes + argmax.nbytes)


def _max_pool_activation_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, *sizes, b, relu, alpha, z, a, d, argmax = _max_pool_activation(backend, rng, n).args
    backend.kernels.max_pool_activation(x, *sizes, b, relu, alpha, z, a, d, argmax)
    da, db = _normal(backend, rng, z.shape), backend.empty(b.shape)
    return Workload((da, d, argmax, *sizes, x, db), x.size, x.nbytes + 2 * z.nbytes + argmax.nbytes)


def _avg_pool(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """2x2 windows at stride 2."""
    x = _maps(backend, rng, max(1, n // int(np.prod(FEATURE_MAP))))
    out = backend.empty((x.shape[0], FEATURE_MAP[0] // 2, FEATURE_MAP[1] // 2, FEATURE_MAP[2]))
    return Workload((x, 2, 2, 2, 2, out), x.size, x.nbytes + out.nbytes)


def _avg_pool_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, *sizes, out = _avg_pool(backend, rng, n).args
    out[...] = _normal(backend, rng, out.shape)
    return Workload((out, *sizes, x), x.size, x.nbytes + out.nbytes)


def _global_avg_pool(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x = _maps(backend, rng, max(1, n // int(np.prod(FEATURE_MAP))))
    out = backend.empty((x.shape[0], FEATURE_MAP[2]))
    return Workload((x, out), x.size, x.nbytes + out.nbytes)


def _global_avg_pool_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, out = _global_avg_pool(backend, rng, n).args
    out[...] = _normal(backend, rng, out.shape)
    return Workload((out, x), x.size, x.nbytes + out.nbytes)


def _dropout(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, out, mask = (_normal(backend, rng, (max(1, n // HIDDEN_WIDTH), HIDDEN_WIDTH)) for _ in range(3))
    return Workload((x, 0.5, 1, 2, out, mask), x.size, 3 * x.nbytes)


def _dropout_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    dout, mask, dx = (_normal(backend, rng, (max(1, n // HIDDEN_WIDTH), HIDDEN_WIDTH)) for _ in range(3))
    return Workload((dout, mask, dx), dout.size, 3 * dout.nbytes)


def _random_shift(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    """Shifts of up to 2 pixels each way (forward and backward take the same arguments)."""
    x = _maps(backend, rng, max(1, n // int(np.prod(FEATURE_MAP))))
    return Workload((x, 2, 2, 1, 2, backend.empty(x.shape)), x.size, 2 * x.nbytes)


def _bn_arrays(backend: Backend, rng: np.random.Generator, n: int, count: int) -> list:
    return [_normal(backend, rng, (max(1, n // BN_CHANNELS), BN_CHANNELS)) for _ in range(count)]


def _bn_vectors(backend: Backend, count: int) -> list:
    return [backend.asarray(np.ones(BN_CHANNELS, np.float32)) for _ in range(count)]


def _batch_norm_train(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, y, xhat = _bn_arrays(backend, rng, n, 3)
    gamma, beta, mean, var, inv_std = _bn_vectors(backend, 5)
    return Workload((x, gamma, beta, 1e-3, 0.99, mean, var, y, xhat, inv_std), x.size, 3 * x.nbytes)


def _batch_norm_eval(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    x, y = _bn_arrays(backend, rng, n, 2)
    gamma, beta, mean, var = _bn_vectors(backend, 4)
    return Workload((x, gamma, beta, mean, var, 1e-3, y), x.size, 2 * x.nbytes)


def _batch_norm_backward(backend: Backend, rng: np.random.Generator, n: int) -> Workload:
    dy, xhat, dx = _bn_arrays(backend, rng, n, 3)
    gamma, inv_std, dgamma, dbeta = _bn_vectors(backend, 4)
    return Workload((dy, xhat, gamma, inv_std, dx, dgamma, dbeta), dy.size, 3 * dy.nbytes)


CASES: dict[str, tuple[str, Callable[..., Workload]]] = {
    "bias_activation (relu)": ("bias_activation", _bias_relu),
    "bias_activation (softmax)": ("bias_activation", _bias_softmax),
    "activation_backward (relu)": ("activation_backward", _backward_relu),
    "bias_gradient (a last layer's)": ("bias_gradient", _bias_gradient),
    "softmax_cross_entropy": ("softmax_cross_entropy", _classifier_loss(_softmax)),
    "sigmoid_binary_cross_entropy": ("sigmoid_binary_cross_entropy", _classifier_loss(lambda z: 1 / (1 + np.exp(-z)))),
    "squared_error": ("squared_error", _squared_error),
    "sgd_update": ("sgd_update", _optimizer(0, 0.01)),
    "momentum_update": ("momentum_update", _optimizer(1, 0.01, 0.9)),
    "adam_update": ("adam_update", _optimizer(2, 0.001, 0.9, 0.999, 1e-8, 0.5)),
    "sgd_update_hyper": ("sgd_update_hyper", _optimizer(0, hyper=True)),
    "momentum_update_hyper": ("momentum_update_hyper", _optimizer(1, 0.9, hyper=True)),
    "adam_update_hyper": ("adam_update_hyper", _optimizer(2, 0.9, 0.999, 1e-8, hyper=True)),
    "softmax_cross_entropy_smoothed": ("softmax_cross_entropy_smoothed", _smoothed_loss),
    "squared_norm": ("squared_norm", _squared_norm),
    "sgd_regularized_update": ("sgd_regularized_update", _regularized(0, 1.0, 0.01, 1e-4)),
    "momentum_regularized_update": ("momentum_regularized_update", _regularized(1, 1.0, 0.01, 0.9, 1e-4, 1)),
    "adam_regularized_update": ("adam_regularized_update",
                                _regularized(2, 1.0, 0.001, 0.9, 0.999, 1e-8, 0.5, 0.0, 1e-5)),
    "rmsprop_update": ("rmsprop_update", _regularized_rmsprop),
    "max_norm": ("max_norm", _max_norm),
    "gather_rows": ("gather_rows", _gather_rows),
    "count_nonfinite": ("count_nonfinite", _count_nonfinite),
    "hue_histograms": ("hue_histograms", _hue_images),
    "im2col (3x3, stride 1, pad 1)": ("im2col", _im2col),
    "col2im (3x3, stride 1, pad 1)": ("col2im", _col2im),
    "weight_gradient (9 x 8, a first convolution's)": ("weight_gradient", _weight_gradient),
    "product (72 x 32 weights, a second convolution's)": ("product", _product),
    "convolution (3x3 windows, 32 filters)": ("convolution", _convolution),
    "convolution_backward (3x3 windows, 32 filters)": ("convolution_backward", _convolution_backward),
    "pooled_convolution (3x3 windows, 32 filters, 2x2 max pool, ReLU)": ("pooled_convolution", _pooled_convolution),
    "pooled_convolution_backward (3x3 windows, 32 filters, 2x2 max pool, ReLU)": ("pooled_convolution_backward",
                                                                                  _pooled_convolution_backward),
    "max_pool (2x2, stride 2)": ("max_pool", _max_pool),
    "max_pool_backward (2x2, stride 2)": ("max_pool_backward", _max_pool_backward),
    "max_pool_activation (2x2, ReLU)": ("max_pool_activation", _max_pool_activation),
    "max_pool_activation_backward (2x2, ReLU)": ("max_pool_activation_backward", _max_pool_activation_backward),
    "avg_pool (2x2, stride 2)": ("avg_pool", _avg_pool),
    "avg_pool_backward (2x2, stride 2)": ("avg_pool_backward", _avg_pool_backward),
    "global_avg_pool": ("global_avg_pool", _global_avg_pool),
    "global_avg_pool_backward": ("global_avg_pool_backward", _global_avg_pool_backward),
    "dropout": ("dropout", _dropout),
    "dropout_backward": ("dropout_backward", _dropout_backward),
    "random_shift (up to 2 px)": ("random_shift", _random_shift),
    "random_shift_backward (up to 2 px)": ("random_shift_backward", _random_shift),
    "batch_norm_train": ("batch_norm_train", _batch_norm_train),
    "batch_norm_eval": ("batch_norm_eval", _batch_norm_eval),
    "batch_norm_backward": ("batch_norm_backward", _batch_norm_backward),
}
"""Case label -> (kernel name, workload builder). Together they cover every declared kernel (``registry.kernels()``)."""


def implementations(kernel: str, backend: Backend | type[Backend]) -> dict[str, Callable[..., Any]]:
    """The fused kernel and its reference of ``backend`` (an instance, or a backend class: its kernel sets)."""
    return {mode: getattr(backend.kernel_set(mode)(), kernel) for mode in KERNEL_SETS}


def copy_bandwidth(config: Config, backend: Backend, elements: int | None = None) -> dict[str, Any]:
    """GB/s of ``copyto`` between two large float32 arrays (bytes read + bytes written)."""
    n = elements or COPY_ELEMENTS[config.quick]
    src, dst = backend.xp.full(n, 1.0, dtype=backend.dtype), backend.empty(n)  # zeros could share one page
    copy = Candidate(lambda: backend.xp.copyto(dst, src), backend.synchronize)
    stats = Stats.of(interleave({"copy": copy}, config.repeats, config.warmup)["copy"])
    return {"elements": n, "seconds": stats.median, "gb_per_s": 2 * src.nbytes / stats.median / 1e9}


def case_row(backend: Backend, functions: dict[str, Callable[..., Any]], label: str, n: int,
             rng: np.random.Generator, copy_gb_per_s: float, min_seconds: float | None, repeats: int) -> dict[str, Any]:
    """One case at ``n`` elements: fused and reference times interleaved, bandwidth, share of copy bandwidth.
    Each sample lasts at least ``min_seconds`` after a warm-up round; None: one call per sample and no warm-up (the
    CUDA simulator's rehearsal, whose timings mean nothing and whose slowest kernels take seconds a call)."""
    work = CASES[label][1](backend, rng, n)
    candidates = {mode: Candidate(lambda f=f: f(*work.args), backend.synchronize) for mode, f in functions.items()}
    for candidate in candidates.values():
        if min_seconds is not None:
            candidate.calibrate(min_seconds)
    samples = interleave(candidates, repeats, warmup=0 if min_seconds is None else 1)
    times = {mode: Stats.of(s).median for mode, s in samples.items()}
    row = {"device": backend.name, "kernel": label, "elements": work.elements, "bytes": work.moved}
    for mode, seconds in times.items():
        gbs = work.moved / seconds / 1e9
        row |= {f"{mode}_s": seconds, f"{mode}_gb_per_s": gbs, f"{mode}_copy_fraction": gbs / copy_gb_per_s}
    row["speedup"] = times["reference"] / times["fused"]
    log(f"kernels: {backend.name} {label} n={work.elements:.0e}: fused {times['fused'] * 1e3:.3f} ms, "
        f"reference {times['reference'] * 1e3:.3f} ms ({row['speedup']:.1f}x)")
    return row


def run(config: Config) -> dict[str, Any]:
    """Time each case at each size on each device, fused and reference interleaved."""
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    rng = np.random.default_rng(0)
    rows, copy = [], {}
    for device in config.devices:
        backend = config.backend(device)
        copy[device] = copy_bandwidth(config, backend)
        log(f"kernels: {device} copy bandwidth {copy[device]['gb_per_s']:.1f} GB/s")
        for label, (kernel, _) in CASES.items():
            functions = implementations(kernel, backend)
            rows += [case_row(backend, functions, label, n, rng, copy[device]["gb_per_s"],
                              MIN_SAMPLE_SECONDS[config.quick], config.repeats) for n in sizes]
    slower = [f"{r['device']} {r['kernel']} at {r['elements']:.0e}" for r in rows if r["speedup"] < 1]
    notes = [
        "bandwidth = bytes a kernel must move (inputs read once, outputs written once; in-place arrays twice) "
        "/ median time; copy fraction = that / the device's measured copy bandwidth",
        "CPU fused kernels switch to their parallel Numba twin (with more than one thread) from these sizes of "
        "their first argument (python -m benchmarks.parallel_thresholds): "
        + "; ".join(f"{name} {twin.threshold:,}" for name, twin in sorted(TWINS.items())),
    ]
    if slower:
        notes.append("fused slower than its reference: " + "; ".join(slower))
    return {"copy_bandwidth": copy, "rows": rows, "notes": notes}
