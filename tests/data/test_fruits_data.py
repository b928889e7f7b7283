"""Fruits-360 loading: both folder layouts, class selection, and every way a folder or file can be bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xpnet.data.fruits import DEFAULT_CLASSES, decode_images, find_split_dirs, load_fruits
from xpnet.errors import DataError


def write_image(
    path: Path, color: tuple[int, int, int] = (200, 40, 10), size: tuple[int, int] = (6, 4)
) -> Path:
    """A small solid-colour image of (width, height) ``size``; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def make_class_folders(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        for k in range(count):
            write_image(root / name / f"{k}.png", color=(10 * k, 100, 200))
    return root


def test_shared_fruits_folder(shared_data: Path) -> None:
    fruits_dir = shared_data / "fruits-360"
    assert find_split_dirs(fruits_dir) == {"train": fruits_dir / "Training"}
    splits = load_fruits(fruits_dir)
    assert set(splits) == {"train"}
    train = splits["train"]
    assert train.class_names == list(DEFAULT_CLASSES)
    assert len(train) == len(train.paths) == 490
    assert train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == [124, 122, 121, 123]
    assert all(path.suffix == ".jpg" for path in train.paths)
    assert all(
        path.parent.name == DEFAULT_CLASSES[label]
        for path, label in zip(train.paths, train.labels, strict=True)
    )


def test_shared_images_decode(shared_data: Path) -> None:
    paths = load_fruits(shared_data / "fruits-360", classes=["Mango"])["train"].paths[:5]
    images, kept = decode_images(paths)
    assert images.shape == (5, 100, 100, 3) and images.dtype == np.uint8
    assert kept == [0, 1, 2, 3, 4]


def test_fruits_layout_with_test_split(tmp_path: Path) -> None:
    make_class_folders(tmp_path / "Training", {"Kiwi": 3, "Banana": 2})
    make_class_folders(tmp_path / "Test", {"Kiwi": 1, "Banana": 1})
    splits = load_fruits(tmp_path)
    assert set(splits) == {"train", "test"}
    assert splits["train"].class_names == ["Banana", "Kiwi"]  # not all defaults present: every folder, sorted
    assert splits["train"].labels.tolist() == [0, 0, 1, 1, 1]
    assert splits["test"].labels.tolist() == [0, 1]
    assert splits["test"].class_names == splits["train"].class_names


def test_plain_folder_of_classes_is_the_train_split(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"b": 2, "a": 1, "c": 1})
    (tmp_path / ".hidden").mkdir()
    assert find_split_dirs(tmp_path) == {"train": tmp_path}
    train = load_fruits(tmp_path)["train"]
    assert train.class_names == ["a", "b", "c"]
    assert train.labels.tolist() == [0, 1, 1, 2]
    chosen = load_fruits(tmp_path, classes=["c", "a"])["train"]
    assert chosen.class_names == ["c", "a"]
    assert [path.parent.name for path in chosen.paths] == ["c", "a"]
    assert chosen.labels.tolist() == [0, 1]


def test_default_classes_when_all_present(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {name: 1 for name in (*DEFAULT_CLASSES, "Apple Red 1")})
    assert load_fruits(tmp_path)["train"].class_names == list(DEFAULT_CLASSES)


def test_non_image_files_skipped_with_warning(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"a": 2})
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    write_image(tmp_path / "a" / "upper.JPG")
    with pytest.warns(UserWarning, match=r"notes\.txt") as record:
        train = load_fruits(tmp_path)["train"]
    assert "DS_Store" not in str(record[0].message)
    assert sorted(path.name for path in train.paths) == ["0.png", "1.png", "upper.JPG"]


def test_missing_class_lists_available_ones(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"Kiwi": 1, "Banana": 1})
    with pytest.raises(DataError, match=r"'Cherry'.*available classes: Banana, Kiwi"):
        load_fruits(tmp_path, classes=["Kiwi", "Cherry"])


def test_class_missing_from_test_split(tmp_path: Path) -> None:
    make_class_folders(tmp_path / "Training", {"Kiwi": 1, "Banana": 1})
    make_class_folders(tmp_path / "Test", {"Kiwi": 1})
    with pytest.raises(DataError, match=r"'Banana' has no folder in .*Test"):
        load_fruits(tmp_path)


def test_empty_class_folder(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"a": 1})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty has no image files"):
        load_fruits(tmp_path)


def test_class_folder_without_images(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"a": 1})
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("hello")
    with (
        pytest.warns(UserWarning, match="readme.md"),
        pytest.raises(DataError, match="docs has no image files"),
    ):
        load_fruits(tmp_path)


@pytest.mark.parametrize("layout", ["missing", "file", "no class folders"])
def test_bad_data_dir(tmp_path: Path, layout: str) -> None:
    target = tmp_path / "data"
    if layout == "file":
        target.write_text("x")
    elif layout == "no class folders":
        write_image(target / "loose.png")
    with pytest.raises(DataError, match=str(target)):
        load_fruits(target)


def test_corrupt_image_skipped_with_warning(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png", color=(1, 2, 3))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    truncated = tmp_path / "truncated.jpg"
    full = write_image(tmp_path / "full.jpg", size=(64, 64)).read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.warns(UserWarning) as record:
        images, kept = decode_images([corrupt, good, truncated])
    messages = [str(warning.message) for warning in record]
    assert len(messages) == 2 and str(corrupt) in messages[0] and str(truncated) in messages[1]
    assert kept == [1]
    assert images.shape == (1, 4, 6, 3)
    assert images[0, 0, 0].tolist() == [1, 2, 3]


def test_all_unreadable_images(tmp_path: Path) -> None:
    bad = [tmp_path / "a.jpg", tmp_path / "b.png"]
    for path in bad:
        path.write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="none of the 2 image file"):
        decode_images(bad)
    with pytest.raises(DataError, match="no image files"):
        decode_images([])


def test_images_of_differing_sizes_are_resized(tmp_path: Path) -> None:
    first = write_image(tmp_path / "first.png", size=(6, 4))
    big = write_image(tmp_path / "big.bmp", color=(0, 255, 0), size=(12, 9))
    gray = tmp_path / "gray.png"
    Image.new("L", (3, 3), 77).save(gray)
    images, kept = decode_images([first, big, gray])
    assert images.shape == (3, 4, 6, 3) and kept == [0, 1, 2]
    assert images[1, 2, 3].tolist() == [0, 255, 0]
    assert images[2, 0, 0].tolist() == [77, 77, 77]
    resized, _ = decode_images([first, big], size=(5, 7))
    assert resized.shape == (2, 5, 7, 3)
