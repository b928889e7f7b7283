"""RandomShift: random whole-pixel translations for data augmentation, hashed from (seed, step, image).

The shifts are held to an independent definition (the hash's 24-bit draw u, floor(u * (2 max + 1)) - max), the
reference kernel to a loop over pixels, the CPU and CUDA kernels (under the simulator here) to the reference bit
for bit, the backward pass to the adjoint of the forward one; then the layer: identity at inference, its
settings, saving, errors, and the ``--shift`` flag of ``xpnet train``.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from cli_helpers import one_error, run
from conftest import fused_float64_backend
from numba import config
from xpnet.kernels import array_module
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.scalar import DROPOUT_BITS, dropout_draw, dropout_key, random_shifts
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

from xpnet import ConfigError, Conv2D, Dense, Flatten, MaxPool2D, RandomShift, Reshape, Sequential, load_model
from xpnet.builders import cnn
from xpnet.layers import Phase, layer_from_config
from xpnet.serialization import read_archive, write_archive

DTYPES = (np.float32, np.float64)
SHAPE = (5, 7, 9, 3)
"""Odd sizes: 7 rows, 9 columns, 3 channels."""
MAX_SHIFTS = [(0, 0), (0, 2), (2, 0), (1, 1), (3, 4), (6, 8)]
"""Including shifts past half the image (6 of 7 rows, 8 of 9 columns)."""
KEYS = [(0, 0), (11, 5), (2**63 + 5, 2**33)]
"""(seed, step) pairs: the last as another rank's seed and a long run's step."""
reference, cpu, gpu = ReferenceKernels(), CpuKernels(), CudaKernels()
KERNEL_SETS = {"reference": reference, "cpu": cpu, "cuda": gpu}


def naive_shifts(seed: int, step: int, count: int, max_h: int, max_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's (down, right) by the definition: draws 2n and 2n + 1 of the hash as u in [0, 1), then
    floor(u * (2 max + 1)) - max."""
    key = dropout_key(np.uint64(seed % 2**64), np.uint64(step % 2**64))

    def shift(index: int, largest: int) -> int:
        u = int(dropout_draw(key, np.uint64(index))) / 2**DROPOUT_BITS
        return math.floor(u * (2 * largest + 1)) - largest

    return (np.array([shift(2 * n, max_h) for n in range(count)], np.int64),
            np.array([shift(2 * n + 1, max_w) for n in range(count)], np.int64))


def naive_translate(x: np.ndarray, down: np.ndarray, right: np.ndarray) -> np.ndarray:
    """out[n, i, j] = x[n, i - down[n], j - right[n]], zero outside x, pixel by pixel."""
    out = np.zeros_like(x)
    n_, h, w, _ = x.shape
    for n in range(n_):
        for i in range(h):
            for j in range(w):
                if 0 <= i - down[n] < h and 0 <= j - right[n] < w:
                    out[n, i, j] = x[n, i - down[n], j - right[n]]
    return out


def run_shift(kernels: ModuleType, x: Any, max_shift: tuple[int, int], seed: int, step: int,
              backward: bool = False) -> Any:
    """The kernel's output in a NaN-filled array of x's kind (every element must be written)."""
    xp = array_module(x)
    out = xp.full(x.shape, np.nan, x.dtype)
    kernel = kernels.random_shift_backward if backward else kernels.random_shift
    kernel(x, *max_shift, seed, step, out)
    return out


def _host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _strided(xp: ModuleType, values: np.ndarray) -> Any:
    """``values`` as a non-contiguous view: every other element of the last axis of a wider array."""
    wide = xp.full((*values.shape[:-1], 2 * values.shape[-1]), np.nan, dtype=values.dtype)
    view = wide[..., ::2]
    view[...] = xp.asarray(values)
    return view


# --- the shifts and the reference against their definitions ---------------------------------------------------


@pytest.mark.parametrize("max_shift", [(0, 2), (3, 4), (6, 8), (27, 1)])
@pytest.mark.parametrize(("seed", "step"), KEYS)
def test_shifts_are_the_hash_scaled_to_whole_pixels(max_shift, seed, step):
    down, right = random_shifts(seed, step, 50, *max_shift)
    expected_down, expected_right = naive_shifts(seed, step, 50, *max_shift)
    np.testing.assert_array_equal(down, expected_down)
    np.testing.assert_array_equal(right, expected_right)
    assert down.dtype == right.dtype == np.int64


def test_shifts_are_uniform_over_every_whole_pixel_in_range():
    down, right = random_shifts(7, 3, 7000, 3, 0)
    counts = np.bincount(down + 3)
    assert len(counts) == 7 and counts.min() > 800  # 1000 expected for each of -3..3
    assert (right == 0).all()


def test_the_same_seed_and_step_draw_the_same_shifts_and_others_other_ones():
    shifts = {key: np.concatenate(random_shifts(*key, 40, 3, 3)) for key in [(1, 0), (1, 1), (2, 0), (2**40, 0)]}
    np.testing.assert_array_equal(np.concatenate(random_shifts(1, 1, 40, 3, 3)), shifts[(1, 1)])
    for a in shifts:
        for b in shifts:
            if a != b:
                assert (shifts[a] != shifts[b]).any(), (a, b)
    # the first images' shifts do not depend on the batch size
    np.testing.assert_array_equal(np.concatenate(random_shifts(1, 1, 10, 3, 3)),
                                  np.concatenate([s[:10] for s in random_shifts(1, 1, 40, 3, 3)]))


@pytest.mark.parametrize("max_shift", MAX_SHIFTS)
def test_reference_translates_each_image_and_back(max_shift):
    x = np.random.default_rng(0).standard_normal(SHAPE)
    down, right = random_shifts(11, 5, SHAPE[0], *max_shift)
    np.testing.assert_array_equal(run_shift(reference, x, max_shift, 11, 5), naive_translate(x, down, right))
    np.testing.assert_array_equal(run_shift(reference, x, max_shift, 11, 5, backward=True),
                                  naive_translate(x, -down, -right))


def test_zero_max_shift_copies():
    x = np.random.default_rng(1).standard_normal(SHAPE)
    for kernels in KERNEL_SETS.values():
        np.testing.assert_array_equal(run_shift(kernels, x, (0, 0), 3, 4), x)


@pytest.mark.parametrize("name", KERNEL_SETS)
def test_backward_is_the_adjoint_of_forward(name):
    """<shift(x), y> == <x, shift_back(y)> for the same seed and step, in float64."""
    kernels = KERNEL_SETS[name]
    rng = np.random.default_rng(2)
    shape = (4, 5, 4, 2) if name == "cuda" else (16, 7, 9, 3)
    for max_shift in [(1, 1), (3, 2), (4, 3)]:
        x, y = rng.standard_normal(shape), rng.standard_normal(shape)
        forward = float(np.vdot(run_shift(kernels, x, max_shift, 9, 2), y))
        adjoint = float(np.vdot(x, run_shift(kernels, y, max_shift, 9, 2, backward=True)))
        assert forward == pytest.approx(adjoint, rel=1e-12, abs=1e-12)


# --- the fused kernels against the reference -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_shift", MAX_SHIFTS)
def test_cpu_is_the_reference_bit_for_bit(dtype, max_shift):
    x = np.random.default_rng(3).standard_normal(SHAPE).astype(dtype)
    for seed, step in KEYS:
        for backward in (False, True):
            np.testing.assert_array_equal(run_shift(cpu, x, max_shift, seed, step, backward),
                                          run_shift(reference, x, max_shift, seed, step, backward))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_takes_non_contiguous_arrays_and_one_image(dtype):
    rng = np.random.default_rng(4)
    values = rng.standard_normal(SHAPE).astype(dtype)
    out = _strided(np, np.zeros(SHAPE, dtype))
    cpu.random_shift(_strided(np, values), 3, 4, 5, 6, out)
    np.testing.assert_array_equal(out, run_shift(reference, values, (3, 4), 5, 6))
    one = values[:1]
    for backward in (False, True):
        np.testing.assert_array_equal(run_shift(cpu, one, (6, 8), 1, 2, backward),
                                      run_shift(reference, one, (6, 8), 1, 2, backward))


def test_cpu_parallel_variant_is_the_reference(parallel_kernels):
    x = np.random.default_rng(5).standard_normal(SHAPE)
    for backward in (False, True):
        np.testing.assert_array_equal(run_shift(cpu, x, (3, 4), 7, 8, backward),
                                      run_shift(reference, x, (3, 4), 7, 8, backward))


def check_cuda_shift(xp: ModuleType, x: np.ndarray, max_shifts: list, contiguous: bool = True) -> None:
    """The CUDA kernels on ``xp`` arrays give the reference's output bit for bit, forward and backward."""
    put = (lambda v: xp.asarray(v.copy())) if contiguous else (lambda v: _strided(xp, v))
    for max_shift in max_shifts:
        for seed, step in KEYS:
            for backward in (False, True):
                out = put(np.full(x.shape, np.nan, x.dtype))
                (gpu.random_shift_backward if backward else gpu.random_shift)(put(x), *max_shift, seed, step, out)
                np.testing.assert_array_equal(_host(out), run_shift(reference, x, max_shift, seed, step, backward))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_is_the_reference_bit_for_bit(dtype):
    """Tiny (the simulator runs every thread in Python), with shifts past half the image."""
    x = np.random.default_rng(6).standard_normal((3, 5, 4, 2)).astype(dtype)
    check_cuda_shift(np, x, [(0, 2), (1, 1), (4, 3)])


@pytest.mark.gpu
@pytest.mark.parametrize("contiguous", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_is_the_reference_and_the_cpu_bit_for_bit(dtype, contiguous):
    import cupy

    x = np.random.default_rng(7).standard_normal((64, 28, 27, 16)).astype(dtype)
    check_cuda_shift(cupy, x, [(0, 2), (2, 2), (20, 26)], contiguous)
    for backward in (False, True):
        np.testing.assert_array_equal(_host(run_shift(reference, cupy.asarray(x), (3, 2), 4, 5, backward)),
                                      run_shift(cpu, x, (3, 2), 4, 5, backward))


@pytest.mark.parametrize("name", KERNEL_SETS)
def test_bad_kernel_arguments_are_refused(name):
    kernels = KERNEL_SETS[name]
    x = np.zeros((2, 5, 4, 3))
    with pytest.raises(ValueError, match="one \\(N, H, W, C\\) shape"):
        kernels.random_shift(x, 1, 1, 0, 0, np.zeros((2, 5, 4, 2)))
    with pytest.raises(ValueError, match="one \\(N, H, W, C\\) shape"):
        kernels.random_shift_backward(x[0], 1, 1, 0, 0, np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match="in place"):
        kernels.random_shift(x, 1, 1, 0, 0, x)
    for max_shift in [(5, 0), (0, 4), (-1, 0)]:
        with pytest.raises(ValueError, match="smaller than the 5x4 images"):
            kernels.random_shift(x, *max_shift, 0, 0, np.empty_like(x))


# --- the layer -----------------------------------------------------------------------------------------------


def small_cnn(shift: Any = (1, 2), **options: Any) -> Sequential:
    """Flat rows of 6x5x2 images: a convolution, then RandomShift (so its backward pass runs), a pool, Dense."""
    layers = [Reshape((6, 5, 2)), Conv2D(3, 3, padding="same", activation="relu"), RandomShift(shift),
              MaxPool2D(2), Flatten(), Dense(3, "softmax")]
    return Sequential(layers, "cce", "adam", input_shape=60, lr=0.05, **{"device": "cpu", "seed": 3, **options})


def _images(n: int = 20, seed: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 60)), rng.integers(0, 3, n)


def test_training_shifts_with_the_kernels_and_inference_is_the_identity():
    model = small_cnn(dtype="float64")
    layer, ws = model.layers[2], model.workspace(4, backward=True).layers[2]
    x = np.random.default_rng(9).standard_normal((4, 6, 5, 3))
    assert layer.forward(x, ws, Phase(training=False, step=3)) is x
    assert layer.forward(x, model.workspace(4, backward=False).layers[2], Phase(training=True, step=3)) is x
    shifted = layer.forward(x, ws, Phase(training=True, step=3)).copy()
    np.testing.assert_array_equal(shifted, run_shift(reference, x, (1, 2), layer.seed, 3))
    other_rank = layer.forward(x, ws, Phase(training=True, step=3, stream=1)).copy()
    assert not np.array_equal(other_rank, shifted)
    np.testing.assert_array_equal(other_rank, run_shift(reference, x, (1, 2), layer.seed + 2**32, 3))
    dy = np.random.default_rng(10).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy, ws, need_dx=True),
                                  run_shift(reference, dy, (1, 2), layer.seed + 2**32, 3, backward=True))
    assert layer.backward(dy, ws, need_dx=False) is None


def test_predictions_ignore_the_shift():
    shifted = small_cnn()
    plain = Sequential([Reshape((6, 5, 2)), Conv2D(3, 3, padding="same", activation="relu"), MaxPool2D(2), Flatten(),
                        Dense(3, "softmax")], input_shape=60, device="cpu")
    plain.set_parameters(shifted.get_parameters())
    x, _ = _images()
    np.testing.assert_array_equal(shifted.predict_proba(x), plain.predict_proba(x))


def test_right_after_the_reshape_it_computes_no_input_gradient():
    model = cnn((6, 5, 2), 3, filters=(2,), dense=4, shift=1, device="cpu", seed=0)
    assert [layer.type_name for layer in model.layers][:3] == ["reshape", "random_shift", "conv2d"]
    assert not model.needs_input_gradient(1) and "dx" not in model.workspace(8, backward=True).layers[1].batch
    x, y = _images(16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert model.step == 2
    assert cnn((6, 5, 2), 3, filters=(2,), device="cpu").layers[1].type_name == "conv2d"  # shift 0: no layer


def test_settings_round_trip_and_the_summary_names_the_shift():
    model = small_cnn()
    layer = model.layers[2]
    assert 0 <= layer.seed < 2**31 and layer.settings() == {"max_shift": [1, 2], "seed": layer.seed}
    for shift, details in [((1, 2), "max shift (1, 2)"), (2, "max shift 2"), ([3, 3], "max shift 3")]:
        again = layer_from_config(RandomShift(shift, seed=7).config())
        assert again.config() == RandomShift(shift, seed=7).config() and again.details() == details
    assert "random_shift" in model.summary(print_fn=None) and "max shift (1, 2)" in model.summary(print_fn=None)


def test_save_load_keeps_the_seed_and_training_continues_identically(tmp_path):
    x, y = _images()
    model = small_cnn(dtype="float64")
    model.fit(x, y, epochs=1, batch_size=8, seed=1, verbose=0)
    loaded = load_model(model.save(tmp_path / "shift.npz"), device="cpu")
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    for m in (model, loaded):
        m.fit(x, y, epochs=1, batch_size=8, seed=2, verbose=0)
    np.testing.assert_array_equal(loaded.get_parameters(), model.get_parameters())


@pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="runs the CUDA kernels on host arrays: needs "
                    "NUMBA_ENABLE_CUDASIM=1 (set by conftest when there is no GPU)")
def test_a_cnn_with_random_shifts_trains_alike_on_the_cuda_kernels():
    x, y = _images(6)
    results = []
    for name in ("cpu", "gpu"):
        backend = fused_float64_backend(name, seed=4)
        model = small_cnn(backend=backend, device=None)
        assert type(model.backend.kernels).__name__ == ("CudaKernels" if name == "gpu" else "CpuKernels")
        model.fit(x, y, epochs=2, batch_size=4, seed=1, verbose=0)
        results.append((model.get_parameters(), model.predict_proba(x)))
    for cpu_result, gpu_result in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(gpu_result, cpu_result, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: RandomShift(-1), "max_shift must be a non-negative integer or (height, width) of them, got -1"),
    (lambda: RandomShift(1.5), "max_shift must be a non-negative integer"),
    (lambda: RandomShift(True), "max_shift must be a non-negative integer"),
    (lambda: RandomShift("2"), "max_shift must be a non-negative integer"),
    (lambda: RandomShift((1, 2, 3)), "max_shift must be a non-negative integer"),
    (lambda: RandomShift((1, -1)), "max_shift must be a non-negative integer"),
    (lambda: RandomShift(1, seed=-1), "RandomShift seed must be an integer in [0, 2**31) or None"),
    (lambda: RandomShift(1, seed=2.0), "RandomShift seed must be an integer in [0, 2**31) or None"),
    (lambda: Sequential([RandomShift(1), Dense(2, "softmax")], input_shape=4),
     "layer 0 (random_shift): RandomShift takes (height, width, channels) inputs, but its inputs have shape (4,)"),
    (lambda: Sequential([Reshape((28, 28, 1)), RandomShift(28), Flatten(), Dense(2, "softmax")], input_shape=784),
     "layer 1 (random_shift): a max_shift of (28, 28) pixels must be smaller than the 28x28 image"),
    (lambda: Sequential([RandomShift((0, 5)), Flatten(), Dense(2, "softmax")], input_shape=(9, 5, 1)),
     "a max_shift of (0, 5) pixels must be smaller than the 9x5 image"),
    (lambda: layer_from_config({"type": "random_shift", "max_shift": 1, "fill": "nearest"}),
     "(random_shift) has bad settings"),
])
def test_bad_settings_are_clear_errors(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


# --- xpnet train --shift -------------------------------------------------------------------------------------


@pytest.fixture
def image_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny .npz of 8x8 images in two classes (class 1 bright on top), trained on the CPU."""
    monkeypatch.setenv("XPNET_DEVICE", "cpu")
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 48)
    x = rng.normal(size=(48, 8, 8)) * 10 + 100
    x[y == 1, :4] += 60
    path = tmp_path / "images.npz"
    np.savez(path, x=x, y=y)
    return path


TINY_CNN = ["--model", "cnn", "--filters", "2", "--hidden", "8", "--epochs", "1", "--batch-size", "16"]




@pytest.mark.parametrize(("options", "fragment"), [
    ([*TINY_CNN, "--shift", "-1"], "--shift -1: must be 0 or more pixels"),
    ([*TINY_CNN, "--shift", "8"], "--shift 8: must be smaller than the 8x8 images"),
    (["--shift", "2"], "--shift applies to --model cnn only"),
    (["--model", "mlp", "--shift", "0"], "--shift applies to --model cnn only"),
])
def test_bad_shift_flags_are_one_line(image_npz, capsys, options, fragment):
    status, _, err = run(capsys, "train", "npz", image_npz, *options)
    assert fragment in one_error(status, err)


def test_shift_trains_saves_and_resumes_like_the_other_settings(image_npz, tmp_path, capsys):
    model_path, folder = tmp_path / "m.npz", tmp_path / "ckpt"
    args = ["train", "npz", image_npz, *TINY_CNN, "--checkpoint-dir", folder, "--save", model_path]
    status, _, err = run(capsys, *args, "--shift", "1")
    assert status == 0, err
    layers = load_model(model_path, device="cpu").layers
    assert [layer.type_name for layer in layers][:3] == ["reshape", "random_shift", "conv2d"]
    assert layers[1].max_shift == (1, 1)
    status, out, err = run(capsys, "info", model_path)
    assert status == 0 and "random_shift" in out and "max shift 1" in out, err
    line = one_error(*run(capsys, *args, "--resume", "--shift", "2")[::2])
    assert "--shift 2 conflicts with the checkpoint's 1" in line, line
    status, _, err = run(capsys, *args, "--resume", "--shift", "1", "--epochs", "2")  # an agreeing flag is fine
    assert status == 0 and "resuming from" in err, err

    # a checkpoint from before --shift existed ran without shifts
    checkpoint = max(folder.glob("checkpoint-*.npz"))
    metadata, arrays = read_archive(checkpoint)
    del metadata["training"]["settings"]["shift"]
    write_archive(checkpoint, arrays, metadata)
    line = one_error(*run(capsys, *args, "--resume", "--shift", "1")[::2])
    assert "--shift 1 conflicts with the checkpoint's 0" in line, line
    status, _, err = run(capsys, *args, "--resume", "--shift", "0")
    assert status == 0, err
