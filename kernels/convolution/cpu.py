"""Numba CPU convolution kernels: each block of images is taken through every step of a pass by one thread.

Run as separate kernels, im2col, the patch products and col2im each spread the batch over the threads their own
way, so a thread mostly reads rows that the other thread wrote a moment before, through the shared cache or over
the chip's fabric, and waits for the slower thread at the end of each kernel. Here a block of whole images is one
task: its windows are laid out and multiplied by the weights while still in the core's cache (forward), or its
weight-gradient part is taken, dL/dz multiplied into its rows and those added back into its images (backward).
The products run as the products family's chunks of at most ``CHUNK_PRODUCT`` multiply-adds (one BLAS call each,
on the calling thread). The blocks and chunks depend only on the shapes, and the weight gradient adds the chunks'
partial products in order, so the results do not depend on the thread count. Where the weights are too wide for
chunks of the products family's fewest rows (``PRODUCT_MIN_ROWS`` forward, ``WEIGHT_GRADIENT_MIN_ROWS`` backward:
576 x 128 weights make chunks of 3 rows, and a test training a Keras tutorial's CNN on them took 18.5 s
instead of 3.8 s), the passes run as the
windows and products kernels in turn, whose products are then one multithreaded BLAS call.

A Conv2D layer's ``max_pool`` joins the same passes (``pooled_convolution`` and its backward): after a block's
product, the block's pooled windows get their max, bias and activation; before a block's backward, its dL/dz is
written from the pooled gradient; both with the pooling family's own row functions, so the values are those of the
kernels in turn. A pool kernel of its own read at two threads what the other core had just written, and started
only once the convolution's slower thread had ended.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from numba import prange

from ..numba_cpu import (
    Launch,
    add_partial_row,
    add_partials,
    contiguous_input,
    contiguous_output,
    contiguous_outputs,
    jit,
    scratch_write_backs,
    serial_and_parallel,
    write_back,
    write_back_all,
)
from ..pooling import cpu as pooling
from ..pooling.cpu import max_pool_activation_rows, unpool_derivative_rows, zero_margin
from ..products import cpu as products
from ..products.cpu import CHUNK_PRODUCT, PRODUCT_MIN_ROWS, WEIGHT_GRADIENT_MIN_ROWS
from ..windows import cpu as windows
from ..windows.cpu import col2im_images, im2col_rows
from . import convolve, convolve_backward, convolve_pooled, convolve_pooled_backward


def blocking(images: int, image_rows: int, k: int, f: int) -> tuple[int, int, int]:
    """(images per block, rows per product chunk, chunks per block) for ``images`` images of ``image_rows`` patch
    rows each, K x F weights: as many whole images per block as one chunk holds (at least one), each block's rows
    cut into chunks of at most ``CHUNK_PRODUCT`` multiply-adds. Blocks of several images are one chunk each, and
    blocks of one image all alike, so every block fills its chunks' partial weight gradients, the last one too."""
    chunk = max(1, CHUNK_PRODUCT // max(k * f, 1))
    per_block = max(1, min(images, chunk // max(image_rows, 1)))
    return per_block, chunk, -(-per_block * image_rows // chunk)


@jit
def _block_product(patches, weights, out, lo, hi, chunk):
    """out[lo:hi] = patches[lo:hi] @ weights, ``chunk`` rows at a time."""
    for r in range(lo, hi, chunk):
        e = min(r + chunk, hi)
        np.dot(patches[r:e], weights, out[r:e])


@jit
def _block_weight_gradient(patches, dz, partial, lo, hi, chunk):
    """For each chunk c of rows lo..hi: partial[c] = patches' rows.T @ dz's rows."""
    for c, r in enumerate(range(lo, hi, chunk)):
        np.dot(patches[r:min(r + chunk, hi)].T, dz[r:min(r + chunk, hi)], partial[c])


@jit
def _block_gradients(patches, dz, weights_t, partial, lo, hi, chunk):
    """For each chunk c of rows lo..hi: partial[c] = patches' rows.T @ dz's rows, then patches' rows = dz's rows @
    weights_t."""
    for c, r in enumerate(range(lo, hi, chunk)):
        e = min(r + chunk, hi)
        np.dot(patches[r:e].T, dz[r:e], partial[c])
        np.dot(dz[r:e], weights_t, patches[r:e])


@jit(inline="always")
def _convolve_images(xf, weights, cf, patches, out, first, last, chunk, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w,
                     pad_top, pad_left):
    """Images first..last: their windows (``im2col_rows``), then their rows @ weights."""
    im2col_rows(cf, xf, first * oh, last * oh, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)
    _block_product(patches, weights, out, first * oh * ow, last * oh * ow, chunk)


def _convolution(x, weights, cols, out, per_block, chunk, stride_h, stride_w, pad_top, pad_left):
    """Per block of ``per_block`` images: its windows, then its rows @ weights (``_convolve_images``)."""
    n_, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf, cf = x.reshape(-1), cols.reshape(-1)
    patches = cols.reshape((n_ * oh * ow, kh * kw * c_))
    for b in prange((n_ + per_block - 1) // per_block):
        first = b * per_block
        _convolve_images(xf, weights, cf, patches, out, first, min(n_, first + per_block), chunk, h_, w_, c_, oh,
                         ow, kh, kw, stride_h, stride_w, pad_top, pad_left)


def _pooled_convolution(x, weights, cols, conv, z, a, d, argmax, b, activation, alpha, pool_h, pool_w, per_block,
                        chunk, stride_h, stride_w, pad_top, pad_left):
    """Per block of ``per_block`` images: its convolution (``_convolve_images``) into conv, then, while those rows
    are still in the core's cache, their pooled windows' max, bias and activation (the pooling family's rows of
    ``max_pool_activation``: the same code, so the same values)."""
    n_, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf, cf = x.reshape(-1), cols.reshape(-1)
    patches = cols.reshape((n_ * oh * ow, kh * kw * c_))
    out = conv.reshape((n_ * oh * ow, conv.shape[3]))
    pooled_rows = z.shape[1]
    for k in prange((n_ + per_block - 1) // per_block):
        first = k * per_block
        last = min(n_, first + per_block)
        _convolve_images(xf, weights, cf, patches, out, first, last, chunk, h_, w_, c_, oh, ow, kh, kw, stride_h,
                         stride_w, pad_top, pad_left)
        max_pool_activation_rows(z, a, d, argmax, conv, b, activation, alpha, pool_h, pool_w, first * pooled_rows,
                                  last * pooled_rows)


@jit(inline="always")
def _convolution_backward_images(cf, xf, patches, dz, weights_t, partial, first, last, chunk, h_, w_, c_, oh, ow, kh,
                                 kw, stride_h, stride_w, pad_top, pad_left):
    """Images first..last: their chunks' weight-gradient partials and dz @ weights.T into their rows
    (``_block_gradients``), then those rows added back into the images (``col2im_images``)."""
    _block_gradients(patches, dz, weights_t, partial, first * oh * ow, last * oh * ow, chunk)
    col2im_images(cf, xf, first, last, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)


def _convolution_backward(cols, dz, weights_t, partial, dw, dx, per_block, chunk, stride_h, stride_w, pad_top,
                          pad_left):
    """Per block of ``per_block`` images: ``_convolution_backward_images``, each block into its own partials; then
    dw = the partials added up in order."""
    n_, h_, w_, c_ = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf, cf = dx.reshape(-1), cols.reshape(-1)
    patches = cols.reshape((n_ * oh * ow, kh * kw * c_))
    blocks = (n_ + per_block - 1) // per_block
    chunks = partial.shape[0] // blocks
    for b in prange(blocks):
        first = b * per_block
        _convolution_backward_images(cf, xf, patches, dz, weights_t, partial[b * chunks:(b + 1) * chunks], first,
                                     min(n_, first + per_block), chunk, h_, w_, c_, oh, ow, kh, kw, stride_h,
                                     stride_w, pad_top, pad_left)
    for r in prange(dw.shape[0]):
        add_partial_row(partial, dw, r)


@jit(inline="always")
def _unpool_images(conv, da, d, argmax, pool_h, pool_w, acc, first, last):
    """dL/dz of images first..last into conv from the pooled dL/da (the pooling family's rows of
    ``max_pool_activation_backward``), the margin no window covers zeroed; their dz's channel sums into acc."""
    _, ph, pw, _ = da.shape
    if conv.shape[1] > ph * pool_h or conv.shape[2] > pw * pool_w:
        for n in range(first, last):
            zero_margin(conv[n], ph * pool_h, pw * pool_w)
    unpool_derivative_rows(conv, da, d, argmax, pool_h, pool_w, acc, first * ph * pw, last * ph * pw)


def _pooled_convolution_backward(cols, da, d, argmax, pool_h, pool_w, conv, weights_t, bias_partial, db, partial,
                                 dw, dx, per_block, chunk, stride_h, stride_w, pad_top, pad_left):
    """Per block of ``per_block`` images: its dL/dz from the pooled gradient (``_unpool_images``), then, still in the
    core's cache, ``_convolution_backward_images`` (only the weight-gradient partials where dx is None: a first
    layer); the blocks' bias and weight-gradient partials added up in order at the end."""
    n_, oh, ow, kh, kw, c_ = cols.shape
    patches = cols.reshape((n_ * oh * ow, kh * kw * c_))
    dz = conv.reshape((n_ * oh * ow, conv.shape[3]))
    blocks = (n_ + per_block - 1) // per_block
    chunks = partial.shape[0] // blocks
    for b in prange(blocks):
        first = b * per_block
        last = min(n_, first + per_block)
        _unpool_images(conv, da, d, argmax, pool_h, pool_w, bias_partial[b], first, last)
        mine = partial[b * chunks:(b + 1) * chunks]
        if dx is None:
            _block_weight_gradient(patches, dz, mine, first * oh * ow, last * oh * ow, chunk)
        else:
            _convolution_backward_images(cols.reshape(-1), dx.reshape(-1), patches, dz, weights_t, mine, first, last,
                                         chunk, dx.shape[1], dx.shape[2], c_, oh, ow, kh, kw, stride_h, stride_w,
                                         pad_top, pad_left)
    for r in prange(dw.shape[0]):
        add_partial_row(partial, dw, r)
    add_partials(bias_partial, db)


# Parallel from these sizes of the first argument (x forward, cols backward): `python -m
# benchmarks.parallel_thresholds --threads 2 --only convolution.convolution convolution.convolution_backward`, 2-core
# Intel Xeon VM, 2026-12-06 20:33, nothing else running (load average 0.9). Serial / parallel time at those sizes:
# 1.51 forward (0.72 at 3e3 elements) and 1.60 backward (0.83 at 3e4); 1.8 to 2.1 from 3e5 elements on.
CONVOLUTION_PARALLEL_MIN = 12_544
CONVOLUTION_BACKWARD_PARALLEL_MIN = 112_896
# The pooled passes' crossovers came out the same (`--only convolution.pooled_convolution
# convolution.pooled_convolution_backward`, same VM, 2026-12-07 01:01, load average 1.2): forward 0.81 at 3e3 and
# 1.63 at 1e4 elements, backward 0.77 at 3e4 and 1.68 at 1e5.
POOLED_CONVOLUTION_PARALLEL_MIN = CONVOLUTION_PARALLEL_MIN
POOLED_CONVOLUTION_BACKWARD_PARALLEL_MIN = CONVOLUTION_BACKWARD_PARALLEL_MIN

_convolution_kernel = serial_and_parallel(_convolution, CONVOLUTION_PARALLEL_MIN)
_convolution_backward_kernel = serial_and_parallel(_convolution_backward, CONVOLUTION_BACKWARD_PARALLEL_MIN)
_pooled_convolution_kernel = serial_and_parallel(_pooled_convolution, POOLED_CONVOLUTION_PARALLEL_MIN)
_pooled_convolution_backward_kernel = serial_and_parallel(_pooled_convolution_backward,
                                                          POOLED_CONVOLUTION_BACKWARD_PARALLEL_MIN)


def _shape_blocking(cols, f: int) -> tuple[int, int, int]:
    n_, oh, ow, kh, kw, c_ = cols.shape
    return blocking(n_, oh * ow, kh * kw * c_, f)


def convolution(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, out) -> None:
    """cols = x's windows, out = cols as rows @ weights, block by block of images (see ``reference.convolution``)."""
    per_block, chunk, _ = _shape_blocking(cols, weights.shape[1])
    if chunk < PRODUCT_MIN_ROWS:
        convolve(windows.im2col, products.product, x, weights, stride_h, stride_w, pad_top, pad_left, cols, out)
        return
    results = [contiguous_output(cols), contiguous_output(out)]
    _convolution_kernel(np.ascontiguousarray(x), np.ascontiguousarray(weights), *results, per_block, chunk, stride_h,
                        stride_w, pad_top, pad_left)
    write_back(cols, results[0])
    write_back(out, results[1])


def convolution_backward(cols, dz, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, dw,
                         dx) -> None:
    """dw = cols as rows .T @ dz (the in-order sum of the chunks' products), cols = dz @ weights.T, dx = col2im of
    cols, block by block of images (see ``reference.convolution_backward``)."""
    per_block, chunk, chunks = _shape_blocking(cols, dz.shape[1])
    if chunk < WEIGHT_GRADIENT_MIN_ROWS:
        convolve_backward(products.weight_gradient, products.product, windows.col2im, cols, dz, weights, stride_h,
                          stride_w, pad_top, pad_left, dw, dx)
        return
    blocks = -(-cols.shape[0] // per_block)
    partial = np.empty((blocks * chunks, *dw.shape), dw.dtype)
    given = (cols, dw, dx)
    results = [np.ascontiguousarray(cols), *contiguous_outputs(dw, dx)]  # cols is read, then overwritten
    _convolution_backward_kernel(results[0], np.ascontiguousarray(dz), np.ascontiguousarray(weights.T), partial,
                                 *results[1:], per_block, chunk, stride_h, stride_w, pad_top, pad_left)
    write_back_all(given, results)


def pooled_convolution_plan(x, weights, stride_h: int, stride_w: int, pad_top: int, pad_left: int, cols, conv,
                            pool_h: int, pool_w: int, b, activation: int, alpha: float, z, a, d, argmax) -> Callable:
    """``pooled_convolution`` prepared once (``Launch``): the returned call runs it."""
    per_block, chunk, _ = _shape_blocking(cols, weights.shape[1])
    if chunk < PRODUCT_MIN_ROWS:
        return partial(convolve_pooled, convolution, pooling.max_pool_activation, x, weights, stride_h, stride_w,
                       pad_top, pad_left, cols, conv, pool_h, pool_w, b, activation, alpha, z, a, d, argmax)
    pooling.require_int32("pooled_convolution", argmax)
    given = (cols, conv, z, a, d, argmax)
    results, copies = contiguous_outputs(*given), []
    inputs = [contiguous_input(array, copies) for array in (x, weights, b)]
    return Launch(_pooled_convolution_kernel, (*inputs[:2], *results, inputs[2], activation, alpha, pool_h, pool_w,
                                               per_block, chunk, stride_h, stride_w, pad_top, pad_left), copies,
                  scratch_write_backs(given, results))


def pooled_convolution(*args) -> None:
    """``convolution`` into conv and ``max_pool_activation`` of it, block by block of images (see
    ``reference.pooled_convolution``)."""
    pooled_convolution_plan(*args)()


def pooled_convolution_backward_plan(da, d, argmax, pool_h: int, pool_w: int, cols, weights, stride_h: int,
                                     stride_w: int, pad_top: int, pad_left: int, conv, db, dw, dx) -> Callable:
    """``pooled_convolution_backward`` prepared once (``Launch``), its partial sums' scratch with it: the returned
    call runs it."""
    per_block, chunk, chunks = _shape_blocking(cols, dw.shape[1])
    if chunk < WEIGHT_GRADIENT_MIN_ROWS:
        return partial(convolve_pooled_backward, pooling.max_pool_activation_backward, products.weight_gradient,
                       convolution_backward, da, d, argmax, pool_h, pool_w, cols, weights, stride_h, stride_w,
                       pad_top, pad_left, conv, db, dw, dx)
    pooling.require_int32("pooled_convolution_backward", argmax)
    blocks = -(-cols.shape[0] // per_block)
    partial_sums = np.empty((blocks * chunks, *dw.shape), dw.dtype)
    bias_partial = np.empty((blocks, db.shape[0]), db.dtype)
    copies: list = []
    pooled = [contiguous_input(array, copies) for array in (da, d, argmax)]
    given = (cols, conv, db, dw, dx)
    results = [contiguous_input(cols, copies), *contiguous_outputs(conv, db, dw, dx)]  # read, then overwritten
    weights_t = contiguous_input(weights.T, copies)
    return Launch(_pooled_convolution_backward_kernel, (results[0], *pooled, pool_h, pool_w, results[1], weights_t,
                                                        bias_partial, results[2], partial_sums, *results[3:],
                                                        per_block, chunk, stride_h, stride_w, pad_top, pad_left),
                  copies, scratch_write_backs(given, results))


def pooled_convolution_backward(*args) -> None:
    """``max_pool_activation_backward`` into conv and ``convolution_backward`` from it (its weight gradient alone
    where dx is None), block by block of images; db adds the blocks' sums in order (see
    ``reference.pooled_convolution_backward``)."""
    pooled_convolution_backward_plan(*args)()
