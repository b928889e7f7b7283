"""Your own data: CSV files, .npz arrays and image folders, read right, and every way they can be bad a DataError
naming the file and the row or image; random and corrupted files give nothing else."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import corrupt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from xpnet.data.fruits import read_images
from xpnet.errors import ConfigError, DataError, XpnetError
from xpnet.scaling import RunningStats, Standardizer
from xpnet.tasks import csv as csv_task
from xpnet.tasks import images as images_task
from xpnet.tasks import npz as npz_task

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

ROWS = ["a,b,kind", "1.5,2,cat", "0.5,-1,dog", "2,3e1,cat", "-1,0,dog", "3,1,cat", "0,2,dog"]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def write_image(path: Path, size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 40, 10)) -> Path:
    """A small solid image of (width, height) ``size``; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def image_folder(root: Path, counts: dict[str, int], size: tuple[int, int] = (8, 6)) -> Path:
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            write_image(root / name / f"{i}.png", size, (40 * k, 10 * i, 200 - 30 * k))
    return root


# --- CSV ----------------------------------------------------------------------------------------------------


def test_csv_features_labels_and_scaling(tmp_path: Path) -> None:
    task = csv_task.load_task(write(tmp_path / "t.csv", ROWS), "kind", test_fraction=1 / 3, seed=0)
    assert task.class_names == ["cat", "dog"] and task.preprocessing["features"] == ["a", "b"]
    assert len(task.y_train) == 4 and len(task.y_test) == 2 and set(task.y_test) == {0, 1}
    np.testing.assert_allclose(task.x_train.mean(axis=0), 0, atol=1e-6)  # standardised on the training rows
    np.testing.assert_allclose(task.x_train.std(axis=0), 1, atol=1e-5)
    raw = np.array([[1.5, 2], [0.5, -1], [2, 30], [-1, 0], [3, 1], [0, 2]])
    scaling = task.preprocessing["scaling"]
    rows = (raw - scaling["mean"]) / scaling["std"]
    assert all(any(np.allclose(row, r, atol=1e-6) for r in rows) for row in task.x_test)


def test_scaling_gathered_in_chunks_and_constant_columns() -> None:
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(3, 2, 500), np.full(500, 7.0), rng.normal(-1e4, 1e3, 500)]
    stats = RunningStats()
    for lo in range(0, 500, 64):
        stats.update(x[lo : lo + 64])
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, x.std(axis=0), rtol=1e-9, atol=1e-12)
    scaler = Standardizer.from_stats(stats)
    np.testing.assert_allclose(scaler.transform(np.array([[3.0, 9.0, -1e4]]))[0, 1], 2.0)  # constant: only centred
    again = Standardizer.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(x), scaler.transform(x))


def test_csv_integer_labels_without_header_quoted_cells_and_label_by_number(tmp_path: Path) -> None:
    lines = ['10,1,"2"', "2,3,4", "1,5,6", "10.0,7,8", "2,9,1", "1,2,3"]
    task = csv_task.load_task(write(tmp_path / "n.csv", lines), "0", header=False, test_fraction=0.5)
    assert task.class_names == ["1", "2", "10"]  # whole numbers sort as numbers; 10.0 is 10
    assert task.preprocessing["features"] is None and task.features == 2
    text = write(tmp_path / "q.csv", ['x,"name, long",y', '1,"a, b",2', "3,c,4", '5,"a, b",6', "7,c,8"])
    quoted = csv_task.load_task(text, "name, long", test_fraction=0.5)
    assert quoted.class_names == ["a, b", "c"] and quoted.features == 2
    last = csv_task.load_task(write(tmp_path / "l.csv", ROWS), "-1", test_fraction=1 / 3)
    assert last.class_names == ["cat", "dog"]


def test_csv_test_file_uses_the_training_scaling_and_classes(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", ROWS)
    test = write(tmp_path / "test.csv", ["kind,b,a", "dog,1,1", "cat,2,2"])  # columns found by name
    task = csv_task.load_task(train, "kind", test_file=test)
    assert len(task.y_train) == 6 and task.y_test.tolist() == [1, 0] and task.test_name == "test"
    scaling = task.preprocessing["scaling"]
    np.testing.assert_allclose(task.x_test[0], (np.array([1, 1]) - scaling["mean"]) / scaling["std"], rtol=1e-6)
    unseen = write(tmp_path / "unseen.csv", ["a,b,kind", "1,1,cat", "2,2,bird"])
    with pytest.raises(DataError, match=r"unseen\.csv, line 3: label 'bird' is not one of the model's classes"):
        csv_task.load_task(train, "kind", test_file=unseen)


@pytest.mark.parametrize(
    ("lines", "label", "message"),
    [
        (ROWS[:3] + ["1,2"] + ROWS[3:], "kind", r"line 4: 2 values, expected 3"),
        (ROWS[:3] + ["1,2,cat,4"] + ROWS[3:], "kind", r"line 4: 4 values, expected 3"),
        (ROWS[:5] + ["x1,2,cat"] + ROWS[5:], "kind", r"line 6, column 1: 'x1' is not a finite number"),
        (ROWS[:2] + ["1,,cat"] + ROWS[2:], "kind", r"line 3, column 2: an empty cell"),
        (ROWS[:2] + ["1,nan,cat"] + ROWS[2:], "kind", r"line 3, column 2: 'nan' is not a finite number"),
        (ROWS[:2] + ['1,"2,3",cat'] + ROWS[2:], "kind", r"line 3, column 2: '2,3' is not a finite number"),
        (ROWS[:2] + ['1,"2,cat'] + ROWS[2:], "kind", r"line 3: not valid CSV"),
        (ROWS, "species", r"no label column 'species': the header's columns are a, b, kind"),
        (ROWS, "7", r"no label column '7'"),
        ([ROWS[0]] + [f"{k},1,cat" for k in range(5)], "kind", r"the training data has 1 class \(only 'cat'\)"),
        (ROWS[:3], "kind", r"class 'cat' has 1 sample"),
        (ROWS[:1], "kind", r"holds no data rows, only a header"),
        ([], "kind", r"holds no rows"),
        (["a,kind", "1,cat"] * 2, "kind", r"no data rows|line 3, column 1"),
    ],
)
def test_bad_csv_names_the_file_and_line(tmp_path: Path, lines: list[str], label: str, message: str) -> None:
    path = write(tmp_path / "bad.csv", lines)
    with pytest.raises(DataError, match=message) as caught:
        csv_task.load_task(path, label)
    assert str(path) in str(caught.value)


def test_csv_not_text_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"a,b,kind\n1,2,\xffcat\n")
    with pytest.raises(DataError, match=r"bin\.csv, line 2: byte 5 is not UTF-8"):
        csv_task.load_task(path, "kind")
    with pytest.raises(DataError, match="no such CSV file"):
        csv_task.load_task(tmp_path / "absent.csv", "kind")
    with pytest.raises(DataError, match="is a folder"):
        csv_task.load_task(tmp_path, "kind")


def test_rows_for_a_trained_model(tmp_path: Path) -> None:
    task = csv_task.load_task(write(tmp_path / "t.csv", ROWS), "kind", test_fraction=1 / 3)
    pre, names = task.preprocessing, task.class_names
    x, y = csv_task.read_rows(pre, names, write(tmp_path / "raw.csv", ["b,a", "2,1.5", "1,3"]))
    assert y is None and x.shape == (2, 2)
    np.testing.assert_allclose(x[0], (np.array([1.5, 2]) - pre["scaling"]["mean"]) / pre["scaling"]["std"], 1e-6)
    _, y = csv_task.read_rows(pre, names, write(tmp_path / "lab.csv", ["a,b,kind", "1,2,dog"]), labelled=True)
    assert y.tolist() == [1]
    with pytest.raises(DataError, match=r"new\.csv, line 3: label 'cow' is not one of the model's classes"):
        csv_task.read_rows(pre, names, write(tmp_path / "new.csv", ["a,b,kind", "1,2,dog", "1,2,cow"]))
    with pytest.raises(DataError, match=r"no column 'a', which the model was trained on"):
        csv_task.read_rows(pre, names, write(tmp_path / "wrong.csv", ["x,b", "1,2"]))


def only_data_error(call, *args, **kwargs) -> None:
    """``call`` succeeds or raises a DataError; anything else fails the test."""
    with contextlib.suppress(DataError):
        call(*args, **kwargs)


@FUZZ
@given(data=st.data(), random_text=st.booleans(), header=st.booleans(), label=st.sampled_from(["kind", "0", "-1"]),
       bound=st.sampled_from([None, 2]))
def test_fuzz_csv(tmp_path: Path, data: st.DataObject, random_text: bool, header: bool, label: str,
                  bound: int | None) -> None:
    if random_text:
        alphabet = st.sampled_from(list('0123456789,,,,\n\r -+.e"xé\x00') + ["nan", "cat", "dog"])
        content = "".join(data.draw(st.lists(alphabet, max_size=400))).encode()
    else:
        content = corrupt(data.draw, ("\n".join(ROWS * 2) + "\n").encode())
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    only_data_error(csv_task.load_task, path, label, header=header, max_in_memory=bound)


# --- .npz ---------------------------------------------------------------------------------------------------


def npz_bytes(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_npz_rows_images_and_test_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    path.write_bytes(npz_bytes(x=rng.normal(5, 3, (40, 3)), y=np.array(["b", "a"] * 20)))
    task = npz_task.load_task(path)
    assert task.class_names == ["a", "b"] and task.image_shape is None and len(task.y_test) == 8
    np.testing.assert_allclose(task.x_train.mean(axis=0), 0, atol=1e-6)
    path.write_bytes(npz_bytes(x=rng.integers(0, 255, (20, 6, 5), dtype=np.uint8), y=np.arange(20) % 3,
                               x_test=np.zeros((4, 6, 5)), y_test=np.array([0, 1, 2, 2])))
    images = npz_task.load_task(path)
    assert images.image_shape == (6, 5, 1) and images.features == 30 and images.y_test.tolist() == [0, 1, 2, 2]
    assert images.class_names == ["0", "1", "2"] and len(images.preprocessing["scaling"]["mean"]) == 1
    x, y = npz_task.read_samples(images.preprocessing, images.class_names, path, labelled=True)
    assert x.shape == (4, 30) and y.tolist() == [0, 1, 2, 2]
    with pytest.raises(ConfigError, match="has x_test and y_test: leave out --test-fraction"):
        npz_task.load_task(path, test_fraction=0.3)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 2))}, r"has no array 'y' \(it holds x\)"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, r"y is float64 of shape \(3,\); give 4 class labels"),
        ({"x": np.zeros(4), "y": np.zeros(4)}, r"x is float64 of shape \(4,\)"),
        ({"x": np.array([["a"]] * 4), "y": np.zeros(4)}, r"x is <U1"),
        ({"x": np.array([[1.0], [np.nan], [1], [2]]), "y": np.arange(4) % 2}, r"x\[1\] holds NaN"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4)}, r"the training data has 1 class \(only '0'\)"),
        ({"x": np.zeros((4, 2)), "y": np.arange(4) % 2, "x_test": np.zeros((2, 2))}, r"both x_test and y_test"),
        ({"x": np.zeros((4, 2)), "y": np.arange(4) % 2, "x_test": np.zeros((2, 3)), "y_test": np.zeros(2)},
         r"x_test has samples of shape \(3,\), but the model's are \(2,\)"),
        ({"x": np.zeros((4, 2)), "y": np.arange(4) % 2, "x_test": np.zeros((2, 2)), "y_test": np.array([0, 5])},
         r"y_test\[1\] is label '5', which is not among the training labels \(0, 1\)"),
    ],
)
def test_bad_npz_names_the_file_and_array(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(npz_bytes(**arrays))
    with pytest.raises(DataError, match=message) as caught:
        npz_task.load_task(path)
    assert str(path) in str(caught.value)


def test_npz_that_is_not_one(tmp_path: Path) -> None:
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match="single .npy array"):
        npz_task.load_task(single)
    pickled = tmp_path / "objects.npz"
    pickled.write_bytes(npz_bytes(x=np.array([{}], dtype=object), y=np.zeros(1)))
    with pytest.raises(DataError, match="not a readable .npz file"):
        npz_task.load_task(pickled)
    with pytest.raises(DataError, match="no such .npz file"):
        npz_task.load_task(tmp_path / "absent.npz")


@FUZZ
@given(data=st.data(), random_bytes=st.booleans())
def test_fuzz_npz(tmp_path: Path, data: st.DataObject, random_bytes: bool) -> None:
    valid = npz_bytes(x=np.arange(24.0).reshape(6, 4), y=np.arange(6) % 2)
    content = data.draw(st.binary(max_size=600)) if random_bytes else corrupt(data.draw, valid)
    path = tmp_path / "fuzz.npz"
    path.write_bytes(content)
    with contextlib.suppress(DataError):
        npz_task.load_task(path)


def test_fuzz_npz_members_stored_uncompressed(tmp_path: Path) -> None:
    path = tmp_path / "weird.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY garbage")
        archive.writestr("y.npy", b"")
    with pytest.raises(DataError, match="not a readable .npz file"):
        npz_task.load_task(path)


# --- image folders ------------------------------------------------------------------------------------------


def test_image_folder_pixels_grey_and_rgb(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "pics", {"b": 5, "a": 5})
    task = images_task.load_task(root, None, seed=1)
    assert task.class_names == ["a", "b"] and task.image_shape == (6, 8, 3) and task.features == 144
    assert len(task.y_test) == 2 and task.test_name == "held-out"
    assert len(task.preprocessing["scaling"]["mean"]) == 3  # per channel
    grey = images_task.load_task(root, None, size=(4, 5), color="grey")
    assert grey.image_shape == (4, 5, 1) and grey.preprocessing["size"] == [4, 5]
    x = images_task.image_features(grey.preprocessing, [write_image(tmp_path / "new.png", (30, 17))])
    assert x.shape == (1, 20)


def test_image_folder_with_test_split(tmp_path: Path) -> None:
    image_folder(tmp_path / "Training", {"x": 3, "y": 3})
    image_folder(tmp_path / "Test", {"x": 1, "y": 2})
    task = images_task.load_task(tmp_path, None)
    assert task.y_test.tolist() == [0, 1, 1] and task.test_name == "test"
    with pytest.raises(ConfigError, match="has a Test/ folder to test on: leave out --test-fraction"):
        images_task.load_task(tmp_path, None, test_fraction=0.3)


def test_bad_image_folders_name_the_folder_or_image(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "mixed", {"a": 3, "b": 3})
    write_image(root / "b" / "big.png", (9, 6))
    with pytest.raises(DataError, match=r"big\.png is 6x9 pixels but .*0\.png is 6x8: the images differ in size; "
                                        r"give --size HxW"):
        images_task.load_task(root, None)
    assert images_task.load_task(root, None, size=(6, 8)).features == 144
    (root / "b" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: not a readable image"):
        images_task.load_task(root, None, size=(6, 8))
    noise = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.png")
    (root / "b" / "empty.png").write_bytes((tmp_path / "whole.png").read_bytes()[:100])  # truncated
    with pytest.raises(DataError, match=r"empty\.png: not a readable image"):
        images_task.load_task(root, None, size=(6, 8), max_in_memory=2)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match=r"none has no class folders"):
        images_task.load_task(tmp_path / "none", None)
    single = image_folder(tmp_path / "single", {"only": 4})
    with pytest.raises(DataError, match=r"single: the training data has 1 class \(only 'only'\)"):
        images_task.load_task(single, None)
    (single / "hollow").mkdir()
    with pytest.raises(DataError, match=r"hollow has no image files"):
        images_task.load_task(single, None)


@FUZZ
@given(data=st.data(), random_bytes=st.booleans())
def test_fuzz_image_files(tmp_path: Path, data: st.DataObject, random_bytes: bool) -> None:
    valid = write_image(tmp_path / "valid.png").read_bytes()
    content = data.draw(st.binary(max_size=300)) if random_bytes else corrupt(data.draw, valid)
    path = tmp_path / "fuzz.png"
    path.write_bytes(content)
    with contextlib.suppress(DataError):
        read_images([path], data.draw(st.sampled_from(["rgb", "grey"])), data.draw(st.sampled_from([None, (3, 4)])))


def test_only_xpnet_errors_from_a_fuzzed_folder(tmp_path: Path) -> None:
    """A folder of one valid and one garbage image per class: a DataError, never another exception."""
    root = image_folder(tmp_path / "f", {"a": 2, "b": 2})
    (root / "a" / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(XpnetError, match=r"junk\.jpg"):
        images_task.load_task(root, None)
