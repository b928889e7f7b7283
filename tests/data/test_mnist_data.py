"""MNIST readers on the real files, on broken files (each gives a useful DataError) and on random bytes."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import corrupt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet.data.download import MNIST_FILES, MNIST_MD5
from xpnet.data.mnist import (
    MnistData,
    default_data_dir,
    find_mnist,
    load_mnist,
    make_mnist_csv,
    read_idx_images,
    read_idx_labels,
    read_mnist_csv,
    write_mnist_csv,
)
from xpnet.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def idx_bytes(magic: int, dims: tuple[int, ...], body: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + body


def csv_line(label: int, pixels: list[int]) -> str:
    return ",".join(str(v) for v in [label, *pixels])


@pytest.fixture(scope="module")
def mnist(shared_data: Path) -> MnistData:
    return load_mnist(shared_data)


@pytest.fixture(scope="module")
def small(mnist: MnistData) -> dict[str, bytes]:
    """A valid 20-image IDX pair (raw and gzip) and a 3-row CSV text, taken from the real test split."""
    x, y = mnist.x_test[:20], mnist.y_test[:20]
    images = idx_bytes(2051, (20, 28, 28), x.tobytes())
    labels = idx_bytes(2049, (20,), y.astype(np.uint8).tobytes())
    text = "\n".join(csv_line(int(y[i]), x[i].tolist()) for i in range(3)) + "\n"
    return {
        "images": images,
        "labels": labels,
        "images.gz": gzip.compress(images),
        "labels.gz": gzip.compress(labels),
        "csv": text.encode(),
    }


def mnist_folder(shared_data: Path, folder: Path) -> Path:
    """A folder of symlinks to the four real files, to be replaced one at a time by broken copies."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        (folder / name).symlink_to(shared_data / "mnist" / name)
    return folder


# --- the real files ---------------------------------------------------------------------------------------


def test_real_mnist_shapes_counts_and_means(mnist: MnistData) -> None:
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.uint8 and mnist.x_test.dtype == np.uint8
    assert mnist.y_train.dtype == np.int64 and mnist.y_test.dtype == np.int64
    assert np.bincount(mnist.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == TEST_COUNTS
    assert mnist.x_train.mean() == pytest.approx(33.318, abs=5e-4)
    assert mnist.x_test.mean() == pytest.approx(33.791, abs=5e-4)
    assert mnist.x_train.flags.writeable


def test_checksums_of_the_real_files(shared_data: Path) -> None:
    for name in MNIST_FILES:
        content = gzip.decompress((shared_data / "mnist" / name).read_bytes())
        assert hashlib.md5(content).hexdigest() == MNIST_MD5[name.removesuffix(".gz")]


def test_gzip_is_detected_by_content_not_suffix(shared_data: Path, mnist: MnistData, tmp_path: Path) -> None:
    packed = (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "labels.idx").write_bytes(packed)
    (tmp_path / "labels.gz").write_bytes(gzip.decompress(packed))
    np.testing.assert_array_equal(read_idx_labels(tmp_path / "labels.idx"), mnist.y_test)
    np.testing.assert_array_equal(read_idx_labels(tmp_path / "labels.gz"), mnist.y_test)


def test_uncompressed_files_load_too(shared_data: Path, mnist: MnistData, tmp_path: Path) -> None:
    for name in MNIST_FILES[2:]:
        (tmp_path / name.removesuffix(".gz")).write_bytes(
            gzip.decompress((shared_data / "mnist" / name).read_bytes())
        )
    for name in MNIST_FILES[:2]:
        (tmp_path / name).symlink_to(shared_data / "mnist" / name)
    assert find_mnist(tmp_path) == tmp_path
    np.testing.assert_array_equal(load_mnist(tmp_path).x_test, mnist.x_test)


def test_find_mnist_looks_in_mnist_subfolder_then_the_folder(shared_data: Path, tmp_path: Path) -> None:
    assert find_mnist(shared_data) == shared_data / "mnist"
    assert find_mnist(shared_data / "mnist") == shared_data / "mnist"
    folder = mnist_folder(shared_data, tmp_path / "mnist")
    (folder / MNIST_FILES[3]).unlink()
    assert find_mnist(tmp_path) is None


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    monkeypatch.delenv("XPNET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "xpnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "xpnet"


# --- broken IDX files -------------------------------------------------------------------------------------


def test_missing_folder_says_how_to_get_the_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_mnist(tmp_path / "nowhere")
    message = str(caught.value)
    assert str(tmp_path / "nowhere" / "mnist") in message and "xpnet train mnist" in message
    assert "--data-dir" in message and "train-images-idx3-ubyte.gz" in message
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="MNIST not found"):
        load_mnist()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx_images(tmp_path / "absent.gz")


def test_wrong_magic_names_what_the_file_is(shared_data: Path) -> None:
    path = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match="magic number is 2049 \\(a labels file\\), expected 2051") as caught:
        read_idx_images(path)
    assert str(path) in str(caught.value)
    with pytest.raises(DataError, match="expected 2049"):
        read_idx_labels(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")


def test_truncated_gzip(shared_data: Path, tmp_path: Path) -> None:
    packed = (shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="truncated gzip") as caught:
        read_idx_images(path)
    assert str(path) in str(caught.value) and "Delete it and download it again" in str(caught.value)


def test_corrupt_gzip_data_and_crc(small: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    packed = bytearray(small["images.gz"])
    packed[-8] ^= 0xFF  # the CRC-32 of the content
    path.write_bytes(packed)
    with pytest.raises(DataError, match="corrupt gzip file.*CRC") as caught:
        read_idx_images(path)
    assert "Delete it and download it again" in str(caught.value)
    packed = bytearray(small["images.gz"])
    packed[len(packed) // 2 : len(packed) // 2 + 16] = bytes(range(16))
    path.write_bytes(packed)
    with pytest.raises(DataError, match="gzip file"):
        read_idx_images(path)


@pytest.mark.parametrize("compress", [False, True])
def test_header_claiming_more_than_the_file_holds_is_refused_cheaply(tmp_path: Path, compress: bool) -> None:
    content = idx_bytes(2051, (10**9, 28, 28), bytes(84))
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(content) if compress else content)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataError, match="announces 1000000000 images of 28x28 pixels") as caught:
            read_idx_images(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5 and peak < 1 << 20
    assert ("gzip file cannot hold" if compress else "it holds 84") in str(caught.value)


def test_truncated_raw_file_and_extra_data(small: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "images"
    path.write_bytes(small["images"][:-100])
    with pytest.raises(DataError, match="truncated or not an MNIST file"):
        read_idx_images(path)
    path.write_bytes(gzip.compress(small["images"][:-100]))
    with pytest.raises(DataError, match="truncated: its header announces 15680 bytes of images but it holds"):
        read_idx_images(path)
    path.write_bytes(small["images"] + b"\0")
    with pytest.raises(DataError, match="data after the 20 images"):
        read_idx_images(path)
    path.write_bytes(small["images"][:10])
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx_images(path)


def test_zero_sized_images_and_bad_labels(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(2051, (3, 0, 28), b""))
    with pytest.raises(DataError, match="empty 0x28 images"):
        read_idx_images(path)
    path.write_bytes(idx_bytes(2049, (4,), bytes([1, 2, 10, 3])))
    with pytest.raises(DataError, match="label 10 at position 2 is outside 0..9"):
        read_idx_labels(path)


def test_count_mismatch_names_both_files(shared_data: Path, mnist: MnistData, tmp_path: Path) -> None:
    folder = mnist_folder(shared_data, tmp_path / "mnist")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.unlink()
    labels.write_bytes(
        gzip.compress(idx_bytes(2049, (9999,), mnist.y_test[:9999].astype(np.uint8).tobytes()))
    )
    with pytest.raises(DataError) as caught:
        load_mnist(tmp_path, verify=False)
    message = str(caught.value)
    assert "10000 images" in message and "9999 labels" in message
    assert str(folder / "t10k-images-idx3-ubyte.gz") in message and str(labels) in message


def test_checksum_mismatch(shared_data: Path, mnist: MnistData, tmp_path: Path) -> None:
    folder = mnist_folder(shared_data, tmp_path / "mnist")
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.unlink()
    x = mnist.x_test.copy()
    x[0, 0] = 1
    images.write_bytes(gzip.compress(idx_bytes(2051, (10000, 28, 28), x.tobytes()), compresslevel=1))
    with pytest.raises(DataError, match="MD5") as caught:
        load_mnist(tmp_path)
    assert str(images) in str(caught.value) and "2646ac647ad5339dbf082846283269ea" in str(caught.value)
    assert load_mnist(tmp_path, verify=False).x_test[0, 0] == 1


# --- CSV --------------------------------------------------------------------------------------------------


def test_csv_roundtrip_with_and_without_header(mnist: MnistData, tmp_path: Path) -> None:
    x, y = mnist.x_train[:50], mnist.y_train[:50]
    path = write_mnist_csv(tmp_path / "out" / "slice.csv", x, y)
    assert [p.name for p in path.parent.iterdir()] == ["slice.csv"]
    got_x, got_y = read_mnist_csv(path)
    assert got_x.dtype == np.uint8 and got_y.dtype == np.int64
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    header = ",".join(["label"] + [f"pixel{i}" for i in range(784)])
    path.write_text(header + "\r\n" + path.read_text().replace("\n", "\r\n") + "\n")
    got_x, got_y = read_mnist_csv(path)
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_make_mnist_csv(shared_data: Path, mnist: MnistData, tmp_path: Path) -> None:
    train, test = make_mnist_csv(shared_data, tmp_path)
    assert (train.name, test.name) == ("mnist_train.csv", "mnist_test.csv")
    assert train.read_bytes().count(b"\n") == 60000
    x, y = read_mnist_csv(test)
    np.testing.assert_array_equal(x, mnist.x_test)
    np.testing.assert_array_equal(y, mnist.y_test)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (csv_line(3, [0] * 783), "line 3: 784 values, expected 785"),
        (csv_line(3, [0] * 784) + ",", "line 3: 786 values"),
        (csv_line(3, [0] * 10 + ["x"] + [0] * 773), "line 3, column 12: 'x' is not a number"),
        (csv_line(3, [0] * 10 + ["1.5"] + [0] * 773), "line 3, column 12: '1.5' is not a number"),
        (csv_line(10, [0] * 784), "line 3: label 10 is outside 0..9"),
        (csv_line(-1, [0] * 784), "line 3: label -1 is outside 0..9"),
        (csv_line(3, [0] * 783 + [256]), "line 3, column 785: pixel 256 is outside 0..255"),
        (csv_line(3, [0] * 783 + [10**30]), "line 3, column 785: pixel 1000000000000000000000000000000"),
    ],
)
@pytest.mark.parametrize("header", [False, True])
def test_csv_errors_name_the_line(tmp_path: Path, line: str, message: str, header: bool) -> None:
    good = csv_line(1, [0] * 784)
    lines = ["label," + ",".join(f"p{i}" for i in range(784))] if header else []
    lines += [good, line, good] if header else [good, good, line]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message.replace("(", "\\(")) as caught:
        read_mnist_csv(path)
    assert str(path) in str(caught.value)


def test_csv_without_rows_or_not_text(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("label,p0\n\n")
    with pytest.raises(DataError, match="no data rows"):
        read_mnist_csv(path)
    path.write_bytes(b"1,2\xff\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_mnist_csv(path)
    with pytest.raises(DataError, match="does not exist"):
        read_mnist_csv(tmp_path / "absent.csv")


def test_write_csv_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="need images"):
        write_mnist_csv(tmp_path / "a.csv", np.zeros((2, 783), np.uint8), np.zeros(2, np.int64))
    with pytest.raises(DataError, match="labels must be whole numbers in 0..9"):
        write_mnist_csv(tmp_path / "a.csv", np.zeros((2, 784), np.uint8), np.array([1, 12]))
    with pytest.raises(DataError, match="images must be whole numbers in 0..255"):
        write_mnist_csv(tmp_path / "a.csv", np.full((2, 784), 0.5), np.array([1, 2]))
    assert not list(tmp_path.iterdir())


# --- random and corrupted input: only DataError may escape ------------------------------------------------


def only_data_error(reader: Callable[[Path], object], path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with contextlib.suppress(DataError):
        reader(path)


READERS = {"images": read_idx_images, "labels": read_idx_labels}


@FUZZ
@given(content=st.binary(max_size=2000), reader=st.sampled_from(sorted(READERS)), packed=st.booleans())
def test_fuzz_idx_random_bytes(tmp_path: Path, content: bytes, reader: str, packed: bool) -> None:
    only_data_error(READERS[reader], tmp_path / "fuzz", gzip.compress(content) if packed else content)


@FUZZ
@given(
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3),
    body=st.binary(max_size=64),
    reader=st.sampled_from(sorted(READERS)),
    packed=st.booleans(),
)
def test_fuzz_idx_headers(tmp_path: Path, dims: list[int], body: bytes, reader: str, packed: bool) -> None:
    magic, ndim = (2051, 3) if reader == "images" else (2049, 1)
    content = idx_bytes(magic, tuple(dims[:ndim]), body)
    only_data_error(READERS[reader], tmp_path / "fuzz", gzip.compress(content) if packed else content)


@FUZZ
@given(data=st.data(), name=st.sampled_from(["images", "labels", "images.gz", "labels.gz"]))
def test_fuzz_idx_corrupted(tmp_path: Path, small: dict[str, bytes], data: st.DataObject, name: str) -> None:
    content = corrupt(data.draw, small[name])
    only_data_error(READERS[name.removesuffix(".gz")], tmp_path / "fuzz", content)


@FUZZ
@given(data=st.data(), random_text=st.booleans())
def test_fuzz_csv(tmp_path: Path, small: dict[str, bytes], data: st.DataObject, random_text: bool) -> None:
    if random_text:
        alphabet = st.sampled_from(list("0123456789,,,,\n\r -+.xé\x00"))
        content = data.draw(st.text(alphabet, max_size=3000)).encode()
    else:
        content = corrupt(data.draw, small["csv"])
    only_data_error(read_mnist_csv, tmp_path / "fuzz.csv", content)
