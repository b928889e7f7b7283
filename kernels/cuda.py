"""Numba CUDA kernels: the GPU twins of ``cpu.py``, for CuPy arrays (or NumPy arrays under Numba's simulator).

Each public function has the same name, signature and meaning as its twin in ``reference.py``. Kernels work on
CuPy arrays in place, without copies, and are launched on CuPy's current stream, so they queue up behind the
CuPy work that made their inputs and never make the host wait. Elementwise work uses grid-stride loops;
row-wise work (softmax, losses: they need a row's maximum or argmax) takes one thread per row; the bias
gradient takes one thread per column. Losses add to ``stats`` with float64 atomics.

Every kernel is compiled for one explicit signature per dtype (float32 or float64, arrays of any layout), all
at once on the first call for that dtype or earlier through ``compile_kernels``. A kernel compiled for exactly
one signature launches without typing its arguments, most of Numba's per-launch cost. Scalars are passed as
the arrays' dtype, so float32 work stays in float32.

NumPy arrays work too (the tests use them under ``NUMBA_ENABLE_CUDASIM=1``): Numba copies each one to the
device and back after the launch. Arguments that may alias (``dz`` and ``da``) are ordered so that the output
is copied back last and wins.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from numba import boolean, config, cuda, float32, float64, int32, int64, void
from numba.core.types import Array, Float

from . import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH
from .hue import hue_histograms_cuda
from .scalar import activate, binary_cross_entropy, cross_entropy_row, row_correct
from .sets import ReferenceKernels

THREADS_PER_BLOCK = 32 if config.ENABLE_CUDASIM else 256
"""Threads per block (few under the simulator, which runs every thread as a Python thread)."""

MAX_BLOCKS = 4 if config.ENABLE_CUDASIM else 4096
"""Most blocks per launch; grid-stride loops cover the rest."""

_FLOAT_TYPES: dict[np.dtype, Float] = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}
_ELEMENTWISE = (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU)


_activate = cuda.jit(device=True)(activate)
_row_correct = cuda.jit(device=True)(row_correct)
_binary_cross_entropy = cuda.jit(device=True)(binary_cross_entropy)
_cross_entropy_row = cuda.jit(device=True)(cross_entropy_row)


def _bias_activation(z, b, d, a, activation, alpha, write_d):
    """Elementwise activations: z += b; a = f(z); d = f'(z) when write_d (else d is a stand-in, untouched)."""
    n, m = z.shape
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        v = z[i, j] + b[j]
        z[i, j] = v
        f, df = _activate(activation, v, alpha, one, zero)
        a[i, j] = f
        if write_d:
            d[i, j] = df


def _softmax_forward(z, b, a):
    """Softmax, one thread per row: z += b; a = exp(z - max) / sum."""
    n, m = z.shape
    zero = z.dtype.type(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        top = z[i, 0] + b[0]
        for j in range(m):
            v = z[i, j] + b[j]
            z[i, j] = v
            if v > top:
                top = v
        total = zero
        for j in range(m):
            e = math.exp(z[i, j] - top)
            a[i, j] = e
            total += e
        for j in range(m):
            a[i, j] /= total


def _backward_columns(da, d, dz, db):
    """One thread per column: dz = da * d down the column, db = its sum (dz may alias da)."""
    n, m = dz.shape
    zero = dz.dtype.type(0.0)
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = zero
        for i in range(n):
            g = da[i, j] * d[i, j]
            dz[i, j] = g
            s += g
        db[j] = s


def _softmax_backward_rows(da, a, dz):
    """One thread per row: dz = a * (da - sum(da * a)); dz may alias da (a row is read, then written)."""
    n, m = dz.shape
    zero = dz.dtype.type(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = zero
        for j in range(m):
            s += da[i, j] * a[i, j]
        for j in range(m):
            dz[i, j] = a[i, j] * (da[i, j] - s)


def _column_sums(x, out):
    """One thread per column: out[j] = sum_i x[i, j]."""
    n, m = x.shape
    zero = x.dtype.type(0.0)
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = zero
        for i in range(n):
            s += x[i, j]
        out[j] = s


def _softmax_cross_entropy(z, a, y, dz, stats, n_t):
    """One thread per row: dz = (a - y) / n; loss -= sum(y * log_softmax(z)); correct count."""
    n, m = z.shape
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) / n_t
        loss += _cross_entropy_row(z, a, y, i)
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss)
        cuda.atomic.add(stats, 1, correct)


def _sigmoid_binary_cross_entropy(z, a, y, dz, stats, nm_t):
    """One thread per row: dz = (a - y) / (n * m); loss += stable BCE averaged over outputs; correct count."""
    n, m = z.shape
    zero = z.dtype.type(0.0)
    one = z.dtype.type(1.0)
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        row = zero
        for j in range(m):
            dz[i, j] = (a[i, j] - y[i, j]) / nm_t
            row += _binary_cross_entropy(z[i, j], a[i, j], y[i, j], one, zero)
        loss += row
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss / m)
        cuda.atomic.add(stats, 1, correct)


def _squared_error(a, y, da, stats, grad_scale, loss_scale):
    """One thread per row: da = grad_scale * (a - y); loss += loss_scale * sum (a - y)^2; correct count."""
    n, m = a.shape
    zero = a.dtype.type(0.0)
    first = cuda.grid(1)
    loss = 0.0
    correct = 0.0
    for i in range(first, n, cuda.gridsize(1)):
        row = zero
        for j in range(m):
            diff = a[i, j] - y[i, j]
            da[i, j] = grad_scale * diff
            row += diff * diff
        loss += row
        correct += _row_correct(a, y, i)
    if first < n:
        cuda.atomic.add(stats, 0, loss_scale * loss)
        cuda.atomic.add(stats, 1, correct)


def _sgd(p, g, lr):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


def _momentum(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        vi = mu * v[i] + g[i]
        v[i] = vi
        p[i] -= lr * vi


def _adam(p, g, m, v, step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, inv_bc2):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        gi = g[i]
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


def _gather_rows(src, out, idx):
    n, m = out.shape
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        out[i, j] = src[idx[i], j]


def _signatures(t: Float) -> dict[str, tuple[Any, Any]]:
    """Each kernel's Python function and its one signature for element type ``t`` (arrays of any layout)."""
    m2, v1, stats = Array(t, 2, "A"), Array(t, 1, "A"), Array(float64, 1, "A")
    return {
        "bias_activation": (_bias_activation, void(m2, v1, m2, m2, int32, t, boolean)),
        "softmax_forward": (_softmax_forward, void(m2, v1, m2)),
        "backward_columns": (_backward_columns, void(m2, m2, m2, v1)),
        "softmax_backward_rows": (_softmax_backward_rows, void(m2, m2, m2)),
        "column_sums": (_column_sums, void(m2, v1)),
        "softmax_cross_entropy": (_softmax_cross_entropy, void(m2, m2, m2, m2, stats, t)),
        "sigmoid_binary_cross_entropy": (_sigmoid_binary_cross_entropy, void(m2, m2, m2, m2, stats, t)),
        "squared_error": (_squared_error, void(m2, m2, m2, stats, t, t)),
        "sgd": (_sgd, void(v1, v1, t)),
        "momentum": (_momentum, void(v1, v1, v1, t, t)),
        "adam": (_adam, void(v1, v1, v1, v1, t, t, t, t, t, t, t)),
        "gather_rows": (_gather_rows, void(m2, m2, Array(int64, 1, "A"))),
    }


_compiled: dict[np.dtype, dict[str, Any]] = {}


def compile_kernels(dtype: Any) -> dict[str, Any]:
    """Compile (once) every kernel for ``dtype`` (float32 or float64) and return them by name."""
    dtype = np.dtype(dtype)
    kernels = _compiled.get(dtype)
    if kernels is None:
        if dtype not in _FLOAT_TYPES:
            raise TypeError(f"CUDA kernels compute in float32 or float64, not {dtype}")
        kernels = {
            name: cuda.jit(signature, cache=True)(func)
            for name, (func, signature) in _signatures(_FLOAT_TYPES[dtype]).items()
        }
        _compiled[dtype] = kernels
    return kernels


def _require(name: str, label: str, x: Any, dtype: Any) -> None:
    """Refuse an array of the wrong dtype: a kernel compiled for one signature would misread it."""
    if x.dtype != dtype:
        raise TypeError(f"CUDA kernel {name}: {label} must be {np.dtype(dtype)}, not {x.dtype}")


def _launch(name: str, work: int, arrays: tuple, scalars: tuple = (), tail: Any = None) -> None:
    """Run kernel ``name`` over ``work`` items for the dtype ``arrays`` share, then ``tail`` (pre-checked)."""
    dtype = arrays[0].dtype
    for x in arrays:
        if x.dtype != dtype:
            raise TypeError(f"CUDA kernel {name}: arrays mix {dtype} and {x.dtype}; all must have one dtype")
    if tail is not None:
        arrays = (*arrays, tail)
    kernel = compile_kernels(dtype)[name]
    blocks = min(MAX_BLOCKS, max(1, -(-work // THREADS_PER_BLOCK)))
    if isinstance(arrays[0], np.ndarray):
        kernel[blocks, THREADS_PER_BLOCK](*arrays, *scalars)
        return
    import cupy

    stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
    # Wrapped without sync: the launch is queued on the stream that made the inputs, so waiting is not needed.
    views = [cuda.as_cuda_array(x, sync=False) for x in arrays]
    kernel[blocks, THREADS_PER_BLOCK, stream](*views, *scalars)


def bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """z += b (in place); a = f(z); d = f'(z) unless d is None (softmax: d is not used)."""
    n, m = z.shape
    if activation == SOFTMAX:
        _launch("softmax_forward", n, (z, b, a))
    elif activation in _ELEMENTWISE:
        # Without d, a stands in for it; it comes after d so that, for host arrays, its copy-back wins.
        stand_in = a if d is None else d
        _launch("bias_activation", n * m, (z, b, stand_in, a), (activation, alpha, d is not None))
    else:
        raise ValueError(f"unknown activation code {activation}")


def activation_backward(da, d, a, activation: int, dz, db) -> None:
    """dz = da * f'(z) (softmax: dz = a * (da - sum(da * a))); db = column sums of dz."""
    n, m = dz.shape
    if activation == SOFTMAX:
        _launch("softmax_backward_rows", n, (da, a, dz))
        _launch("column_sums", m, (dz, db))
    else:
        _launch("backward_columns", m, (da, d, dz, db))


def softmax_cross_entropy(z, a, y, dz, stats) -> None:
    """Softmax output + categorical cross-entropy: dz = (a - y) / n; accumulate loss and correct count."""
    _require("softmax_cross_entropy", "stats", stats, np.float64)
    _launch("softmax_cross_entropy", z.shape[0], (z, a, y, dz), (z.shape[0],), stats)


def sigmoid_binary_cross_entropy(z, a, y, dz, stats) -> None:
    """Sigmoid output + binary cross-entropy (mean over outputs): dz = (a - y) / (n * m)."""
    _require("sigmoid_binary_cross_entropy", "stats", stats, np.float64)
    _launch("sigmoid_binary_cross_entropy", z.shape[0], (z, a, y, dz), (z.size,), stats)


def squared_error(a, y, da, stats, grad_scale: float, loss_scale: float) -> None:
    """da = grad_scale * (a - y); per-sample loss = loss_scale * sum_j (a - y)^2."""
    _require("squared_error", "stats", stats, np.float64)
    _launch("squared_error", a.shape[0], (a, y, da), (grad_scale, loss_scale), stats)


def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    _launch("sgd", p.shape[0], (p, g), (lr,))


def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    _launch("momentum", p.shape[0], (p, g, v), (lr, mu))


def adam_update(
    p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float
) -> None:
    """Adam in one pass: see ``reference.adam_update`` for the meaning of the scalars."""
    scalars = (step_size, beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, 1.0 / bc2_sqrt)
    _launch("adam", p.shape[0], (p, g, m, v), scalars)


def gather_rows(src, idx, out) -> None:
    """out = src[idx] (the rows of one shuffled batch); idx is int64, every entry in [0, len(src))."""
    _require("gather_rows", "idx", idx, np.int64)
    _launch("gather_rows", out.size, (src, out), tail=idx)



class CudaKernels(ReferenceKernels, implementations=sys.modules[__name__]):
    """Numba CUDA kernels on CuPy's current stream; what this module lacks falls back to the CuPy reference."""

    mode = "fused"
    device = "gpu"
    hue_histograms = staticmethod(hue_histograms_cuda)

    def compile(self, dtype: Any) -> None:
        compile_kernels(dtype)
