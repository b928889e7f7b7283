"""Hue histograms (reference, Numba CPU, Numba CUDA), bin selection and standardisation, the feature cache."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from skimage.color import rgb2hsv
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.hue import cpu as hue_cpu
from xpnet.kernels.hue.reference import hue_reference
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

from xpnet import features
from xpnet.backend import get_backend
from xpnet.data import fruits
from xpnet.errors import DataError, ModelFileError
from xpnet.features import HueHistogramFeatures, cached_histograms

REFERENCE, CPU = ReferenceKernels(), CpuKernels()


@pytest.fixture(scope="module")
def fruit_paths(shared_data: Path) -> list[Path]:
    return fruits.load_fruits(shared_data / "fruits-360")["train"].paths


@pytest.fixture(scope="module")
def fruit_images(fruit_paths: list[Path]) -> np.ndarray:
    images, kept = fruits.decode_images(fruit_paths)
    assert len(kept) == 490
    return images


def edge_case_images() -> np.ndarray:
    """Grays, primaries and secondaries, every kind of max tie, a coarse grid of colours, random colours."""
    grays = [(v, v, v) for v in (0, 1, 127, 128, 254, 255)]
    primaries = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    ties = [(200, 200, 10), (10, 200, 200), (200, 10, 200), (255, 255, 254), (1, 0, 1), (3, 3, 2)]
    grid = list(itertools.product(range(0, 256, 15), repeat=3))
    rng = np.random.default_rng(1)
    pixels = np.concatenate(
        [grays + primaries + ties + grid, rng.integers(0, 256, (20_000 - 18 - len(grid), 3))]
    )
    return pixels.astype(np.uint8).reshape(4, 50, 100, 3)


def numpy_histograms(images: np.ndarray, bins: int = 360) -> np.ndarray:
    """Per-image ``np.histogram`` over fixed edges on [0, 1] of skimage's hue: the definition to match."""
    return np.stack(
        [np.histogram(rgb2hsv(image)[..., 0], bins=bins, range=(0.0, 1.0))[0] for image in images]
    )


def test_hue_equals_skimage_on_real_images(fruit_images: np.ndarray) -> None:
    expected = np.stack([rgb2hsv(image)[..., 0] for image in fruit_images[::7]])
    np.testing.assert_allclose(hue_reference(fruit_images[::7]), expected, rtol=0, atol=1e-12)


def test_hue_equals_skimage_on_edge_cases() -> None:
    images = edge_case_images()
    expected = rgb2hsv(images.reshape(-1, 100, 3)).reshape(images.shape)[..., 0]
    result = hue_reference(images)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)
    assert np.all(result.reshape(-1)[:6] == 0.0)  # grays
    assert result.reshape(-1)[6:12].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1 / 6, 1 / 2, 5 / 6])


def test_fixed_edges_are_numpy_linspace() -> None:
    for bins in (1, 7, 360, 1000):
        assert np.array_equal(np.linspace(0.0, 1.0, bins + 1)[:-1], np.arange(bins) * (1.0 / bins))


def test_reference_histogram_equals_numpy_histogram(fruit_images: np.ndarray) -> None:
    # Many hues of uint8 pixels lie exactly on a bin edge: this fails if bins are taken as floor(hue * 360).
    for images in (fruit_images[::5], edge_case_images()):
        result = REFERENCE.hue_histograms(images)
        assert result.dtype == np.float64 and result.shape == (len(images), 360)
        assert np.array_equal(result, numpy_histograms(images))
    assert np.array_equal(
        REFERENCE.hue_histograms(edge_case_images(), bins=7), numpy_histograms(edge_case_images(), 7)
    )


@pytest.mark.parametrize("variant", ["dispatch", "serial", "parallel"])
def test_numba_cpu_equals_reference(fruit_images: np.ndarray, variant: str) -> None:
    rng = np.random.default_rng(2)
    batches = [
        fruit_images,
        edge_case_images(),
        rng.integers(0, 256, (1, 1, 1, 3), dtype=np.uint8),
        rng.integers(0, 256, (7, 3, 5, 3), dtype=np.uint8),
        fruit_images[:3, ::2, ::3],  # not contiguous
    ]
    for images in batches:
        expected = REFERENCE.hue_histograms(images)
        if variant == "dispatch":
            result = CPU.hue_histograms(images)
        else:
            result = np.zeros_like(expected)
            getattr(hue_cpu._hue_histograms_kernel, variant)(np.ascontiguousarray(images), result)
        assert np.array_equal(result, expected)
        assert np.all(result.sum(axis=1) == images.shape[1] * images.shape[2])


@settings(max_examples=40, deadline=None)
@given(
    images=arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.just(3)))
)
def test_numba_cpu_equals_numpy_histogram_property(images: np.ndarray) -> None:
    assert np.array_equal(CPU.hue_histograms(images, bins=360), numpy_histograms(images))


def test_cuda_kernel_equals_reference() -> None:
    # Runs on Numba's CUDA simulator without a GPU (conftest): tiny images keep it quick.
    images = edge_case_images()[:3, :4, :5]
    images[0, 0, :3] = [(9, 9, 9), (255, 255, 0), (0, 0, 255)]
    expected = REFERENCE.hue_histograms(images)
    assert np.array_equal(CudaKernels().hue_histograms(images), expected)
    assert np.array_equal(CudaKernels().hue_histograms(images, 7), REFERENCE.hue_histograms(images, 7))


def test_dispatch_and_bad_input() -> None:
    images = edge_case_images()[:2]
    assert np.array_equal(CpuKernels().hue_histograms(images), REFERENCE.hue_histograms(images))
    assert CpuKernels().implementation("hue_histograms") == "cpu"
    with pytest.raises(ValueError, match="uint8 RGB"):
        CPU.hue_histograms(images.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        REFERENCE.hue_histograms(images[..., :2])
    with pytest.raises(ValueError, match="bins"):
        CPU.hue_histograms(images, bins=0)


def test_features_hue_histograms_on_cpu_backend(fruit_images: np.ndarray) -> None:
    backend = get_backend("cpu")
    result = features.hue_histograms(fruit_images[:10], backend)
    assert isinstance(result, np.ndarray)
    assert np.array_equal(result, REFERENCE.hue_histograms(fruit_images[:10]))


@pytest.mark.gpu
def test_cupy_path_equals_reference(fruit_images: np.ndarray) -> None:
    import cupy

    backend = get_backend("gpu")
    on_device = features.hue_histograms(fruit_images, backend)
    assert isinstance(on_device, cupy.ndarray)
    expected = REFERENCE.hue_histograms(fruit_images)
    assert np.array_equal(backend.to_host(on_device), expected)
    assert np.array_equal(REFERENCE.hue_histograms(cupy.asarray(fruit_images)).get(), expected)
    fitted = HueHistogramFeatures().fit(expected)
    np.testing.assert_allclose(fitted.transform(on_device).get(), fitted.transform(expected), rtol=1e-12)


def test_feature_selection_and_standardisation() -> None:
    rng = np.random.default_rng(3)
    hist = np.full((40, 10), 100.0)
    hist[:, 2] += rng.normal(0, 200, 40)
    hist[:, 7] += rng.normal(0, 80, 40)
    hist[:, 4] += rng.normal(0, 10, 40)  # varies, but less than min_std
    selector = HueHistogramFeatures()
    out = selector.fit_transform(hist)
    assert selector.kept.tolist() == [2, 7] and selector.n_features == 2
    assert out.shape == (40, 2)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-12)
    keep_all = HueHistogramFeatures(min_std=-1).fit(hist)
    assert keep_all.n_features == 10
    assert np.all(np.isfinite(keep_all.transform(hist)))  # constant bins: std floored, not divided by 0


def test_feature_selection_on_real_histograms(fruit_images: np.ndarray, tmp_path: Path) -> None:
    hist = CPU.hue_histograms(fruit_images)
    selector = HueHistogramFeatures().fit(hist)
    assert 0 < selector.n_features < 360
    assert np.all(hist[:, selector.kept].std(axis=0) > 50.0)
    saved = tmp_path / "features.json"
    saved.write_text(json.dumps(selector.to_dict()))
    restored = HueHistogramFeatures.from_dict(json.loads(saved.read_text()))
    assert restored.kept.tolist() == selector.kept.tolist() and restored.bins == 360
    assert np.array_equal(restored.transform(hist[:20]), selector.transform(hist[:20]))


def test_feature_selection_errors() -> None:
    with pytest.raises(DataError, match="min_std=50"):
        HueHistogramFeatures().fit(np.ones((5, 360)))
    with pytest.raises(DataError, match="n_images"):
        HueHistogramFeatures().fit(np.ones((0, 360)))
    with pytest.raises(ValueError, match="not fitted"):
        HueHistogramFeatures().transform(np.ones((5, 360)))
    selector = HueHistogramFeatures(min_std=0).fit(np.arange(20.0).reshape(2, 10))
    with pytest.raises(DataError, match="10 bins"):
        selector.transform(np.ones((2, 360)))
    state = selector.to_dict()
    with pytest.raises(ModelFileError, match="malformed"):
        HueHistogramFeatures.from_dict({k: v for k, v in state.items() if k != "kept"})
    with pytest.raises(ModelFileError, match="inconsistent"):
        HueHistogramFeatures.from_dict({**state, "kept": [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]})
    with pytest.raises(ModelFileError, match="inconsistent"):
        HueHistogramFeatures.from_dict({**state, "mean": [0.0]})


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Number of paths passed to each ``decode_images`` call."""
    calls: list[int] = []
    decode = fruits.decode_images

    def counting(paths, size=None):
        calls.append(len(paths))
        return decode(paths, size)

    monkeypatch.setattr(fruits, "decode_images", counting)
    return calls


def test_cache_skips_decoding_on_second_call(
    fruit_paths: list[Path], fruit_images: np.ndarray, tmp_path: Path, count_decodes: list[int]
) -> None:
    paths = fruit_paths[::40]
    backend = get_backend("cpu")
    first, kept = cached_histograms(paths, tmp_path / "cache", backend)
    assert count_decodes == [len(paths)] and kept == list(range(len(paths)))
    assert first.dtype == np.float64 and first.shape == (len(paths), 360)
    assert np.array_equal(first, REFERENCE.hue_histograms(fruit_images[::40]))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == len(paths)
    second, kept_again = cached_histograms(paths, tmp_path / "cache", backend)
    assert count_decodes == [len(paths)]  # no new decode
    assert kept_again == kept and np.array_equal(second, first)


def test_cache_recomputes_corrupt_entry(
    fruit_paths: list[Path], tmp_path: Path, count_decodes: list[int]
) -> None:
    paths = fruit_paths[:3]
    backend = get_backend("cpu")
    first, _ = cached_histograms(paths, tmp_path, backend)
    entry = sorted(tmp_path.glob("*.npz"))[0]
    entry.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.warns(UserWarning, match=f"{entry.name}.*recomputing"):
        again, _ = cached_histograms(paths, tmp_path, backend)
    assert count_decodes == [3, 1]
    assert np.array_equal(again, first)
    with np.load(entry, allow_pickle=False) as stored:  # overwritten with a good entry
        assert stored["hist"].shape == (360,)


def test_cache_skips_unreadable_images(fruit_paths: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg")
    backend = get_backend("cpu")
    cached_histograms(fruit_paths[:2], tmp_path / "cache", backend)
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        hist, kept = cached_histograms([fruit_paths[0], corrupt, fruit_paths[1]], tmp_path / "cache", backend)
    assert kept == [0, 2] and hist.shape == (2, 360)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="could be read"):
        cached_histograms([corrupt, tmp_path / "missing.jpg"], tmp_path / "cache", backend)


def test_cache_resizes_to_its_size(tmp_path: Path) -> None:
    image = tmp_path / "small.png"
    Image.new("RGB", (10, 10), (0, 255, 0)).save(image)
    hist, _ = cached_histograms([image], tmp_path / "cache", get_backend("cpu"))
    assert hist.sum() == 100 * 100  # decoded at the cache's 100x100
    # Pure green: hue 2/6 = 0.33333333333333331 lies just below edge 120 * (1/360) = 0.33333333333333337.
    assert hist[0, 119] == 100 * 100
