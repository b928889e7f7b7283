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
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..numba_cpu import contiguous_output, jit, serial_and_parallel, write_back
from ..products import cpu as products
from ..products.cpu import CHUNK_PRODUCT, PRODUCT_MIN_ROWS, WEIGHT_GRADIENT_MIN_ROWS
from ..windows import cpu as windows
from ..windows.cpu import col2im_images, im2col_rows
from . import convolve, convolve_backward


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
def _block_gradients(patches, dz, weights_t, partial, lo, hi, chunk):
    """For each chunk c of rows lo..hi: partial[c] = patches' rows.T @ dz's rows, then patches' rows = dz's rows @
    weights_t."""
    for c, r in enumerate(range(lo, hi, chunk)):
        e = min(r + chunk, hi)
        np.dot(patches[r:e].T, dz[r:e], partial[c])
        np.dot(dz[r:e], weights_t, patches[r:e])


def _convolution(x, weights, cols, out, per_block, chunk, stride_h, stride_w, pad_top, pad_left):
    """Per block of ``per_block`` images: its windows (``im2col_rows``), then its rows @ weights."""
    n_, h_, w_, c_ = x.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf, cf = x.reshape(-1), cols.reshape(-1)
    patches = cols.reshape((n_ * oh * ow, kh * kw * c_))
    image_rows = oh * ow
    for b in prange((n_ + per_block - 1) // per_block):
        first = b * per_block
        last = min(n_, first + per_block)
        im2col_rows(cf, xf, first * oh, last * oh, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)
        _block_product(patches, weights, out, first * image_rows, last * image_rows, chunk)


def _convolution_backward(cols, dz, weights_t, partial, dx, per_block, chunk, stride_h, stride_w, pad_top,
                          pad_left):
    """Per block of ``per_block`` images: its chunks' weight-gradient partials and dz @ weights.T into its rows
    (``_block_gradients``), then those rows added back into its images (``col2im_images``)."""
    n_, h_, w_, c_ = dx.shape
    _, oh, ow, kh, kw, _ = cols.shape
    xf, cf = dx.reshape(-1), cols.reshape(-1)
    patches = cols.reshape((n_ * oh * ow, kh * kw * c_))
    image_rows = oh * ow
    blocks = (n_ + per_block - 1) // per_block
    chunks = partial.shape[0] // blocks
    for b in prange(blocks):
        first = b * per_block
        last = min(n_, first + per_block)
        _block_gradients(patches, dz, weights_t, partial[b * chunks:(b + 1) * chunks], first * image_rows,
                         last * image_rows, chunk)
        col2im_images(cf, xf, first, last, h_, w_, c_, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)


# Parallel from these sizes of the first argument (x forward, cols backward): `python -m
# benchmarks.parallel_thresholds --threads 2 --only convolution.convolution convolution.convolution_backward`, 2-core
# Intel Xeon VM, 2026-12-06 20:33, nothing else running (load average 0.9). Serial / parallel time at those sizes:
# 1.51 forward (0.72 at 3e3 elements) and 1.60 backward (0.83 at 3e4); 1.8 to 2.1 from 3e5 elements on.
CONVOLUTION_PARALLEL_MIN = 12_544
CONVOLUTION_BACKWARD_PARALLEL_MIN = 112_896

_convolution_kernel = serial_and_parallel(_convolution, CONVOLUTION_PARALLEL_MIN)
_convolution_backward_kernel = serial_and_parallel(_convolution_backward, CONVOLUTION_BACKWARD_PARALLEL_MIN)


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
    results = [np.ascontiguousarray(cols), contiguous_output(dx)]  # cols is read, then overwritten
    _convolution_backward_kernel(results[0], np.ascontiguousarray(dz), np.ascontiguousarray(weights.T), partial,
                                 results[1], per_block, chunk, stride_h, stride_w, pad_top, pad_left)
    np.sum(partial, axis=0, out=dw)
    write_back(cols, results[0])
    write_back(dx, results[1])
