"""`xpnet train csv / npz / images` end to end: train -> save -> evaluate -> predict on raw rows and images, a
streamed run, and every bad input as one clear line with exit code 2 and nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run
from PIL import Image

from xpnet.serialization import load_model

RESULT = re.compile(r"^(held-out|test) accuracy ([0-9.]+)%")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DEVICE", "cpu")



def accuracy(out: str) -> float:
    match = RESULT.match(out.strip().splitlines()[-1])
    assert match, out
    return float(match[2])


def blobs_csv(path: Path, n: int = 240, seed: int = 0, label_first: bool = False) -> Path:
    """Three well separated classes of 3 features on very different scales, with a header."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 3)) * 0.3 + labels[:, None] * [1.0, -1.0, 0.5]
    x *= [1.0, 100.0, 0.01]
    names = np.array(["red", "green", "blue"])[labels]
    rows = [f"{c},{a},{b},{d}" if label_first else f"{a},{b},{c},{d}" for (a, b, d), c in zip(x, names, strict=True)]
    header = "colour,a,b,d" if label_first else "a,b,colour,d"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_csv_train_evaluate_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = blobs_csv(tmp_path / "blobs.csv")
    model, plot = tmp_path / "m.npz", tmp_path / "curves.png"
    code, out, err = run(capsys, "train", "csv", data, "--label", "colour", "--epochs", "15", "--save", model,
                         "--plot", plot, "--checkpoint-dir", tmp_path / "ck", "--quiet")
    assert code == 0, err
    assert accuracy(out) >= 90
    assert plot.read_bytes()[:8] == PNG_MAGIC and (tmp_path / "curves-confusion.png").read_bytes()[:8] == PNG_MAGIC
    saved = load_model(model, device="cpu")
    assert saved.class_names == ["blue", "green", "red"] and saved.preprocessing["type"] == "csv"
    code, out, err = run(capsys, "evaluate", model, blobs_csv(tmp_path / "more.csv", seed=1, label_first=True))
    assert code == 0, err
    assert accuracy(out) >= 90 and "on 240 samples" in out
    raw = tmp_path / "raw.csv"  # raw feature rows, other column order, no label column
    raw.write_text("d,b,a\n0.005,-100,1\n0,0,0\n0.01,-200,2\n")
    code, out, err = run(capsys, "predict", model, raw)
    assert code == 0, err
    assert [line.split(": ")[1].split(" ")[0] for line in out.strip().splitlines()] == ["green", "red", "blue"]
    assert out.startswith(f"{raw} row 1: ")
    unseen = tmp_path / "unseen.csv"
    unseen.write_text("a,b,colour,d\n1,-100,green,0\n1,-100,purple,0\n")
    code, _, err = run(capsys, "predict", model, unseen)
    assert code == 2 and err.strip() == (f"xpnet: error: {unseen}, line 3: label 'purple' is not one of the model's "
                                          "classes (blue, green, red)")
    code, _, err = run(capsys, "evaluate", model)
    assert code == 2 and "give a CSV file of labelled samples" in err


def test_csv_streamed_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = blobs_csv(tmp_path / "blobs.csv", n=300)
    code, out, err = run(capsys, "train", "csv", data, "--label", "2", "--max-in-memory", "40", "--epochs", "15",
                         "--quiet", "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert accuracy(out) >= 90
    code, out, err = run(capsys, "evaluate", tmp_path / "m.npz", data)
    assert code == 0 and accuracy(out) >= 90, err


def test_npz_train_evaluate_predict_with_a_cnn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 160)
    x = rng.normal(size=(160, 8, 8)) * 10 + 100
    x[y == 1, :4] += 60  # class 1 is bright on top
    path = tmp_path / "arrays.npz"
    np.savez(path, x=x, y=y)
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "npz", path, "--model", "cnn", "--filters", "4", "--hidden", "16",
                         "--epochs", "10", "--batch-size", "16", "--quiet", "--save", model)
    assert code == 0, err
    assert accuracy(out) >= 90
    assert [layer.type_name for layer in load_model(model, device="cpu").layers][:2] == ["reshape", "conv2d"]
    code, out, err = run(capsys, "evaluate", model, path)
    assert code == 0 and accuracy(out) >= 90, err
    code, out, err = run(capsys, "predict", model, path)
    assert code == 0 and len(out.strip().splitlines()) == 160, err


def fruit_folder(shared_data: Path, root: Path, per_class: int = 12) -> Path:
    """A small folder of real fruit photos (links), three classes."""
    for name in ("Apple Braeburn", "Mango", "Raspberry"):
        source = shared_data / "fruits-360" / "Training" / name
        (root / name).mkdir(parents=True)
        for path in sorted(source.iterdir())[:per_class]:
            (root / name / path.name).symlink_to(path)
    return root


@pytest.mark.parametrize("options", [["--size", "16x16", "--model", "cnn", "--filters", "4", "--hidden", "16"],
                                     ["--features", "hue", "--epochs", "30"],
                                     ["--size", "10x12", "--color", "grey", "--max-in-memory", "7"]])
def test_images_train_evaluate_predict(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       options: list[str]) -> None:
    folder = fruit_folder(shared_data, tmp_path / "fruit")
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "images", folder, "--quiet", "--save", model, "--epochs", "6", *options)
    assert code == 0, err
    trained = accuracy(out)
    code, out, err = run(capsys, "evaluate", model, folder)
    assert code == 0, err
    assert accuracy(out) == trained and "held-out" in out
    photo = next((folder / "Mango").iterdir())
    bigger = tmp_path / "mango.png"
    Image.open(photo).resize((130, 90)).save(bigger)
    code, out, err = run(capsys, "predict", model, photo, bigger)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 2


def _bad_inputs(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Each bad input: the train arguments after `xpnet train` and the words its error line must hold."""
    good = blobs_csv(root / "good.csv")
    lines = good.read_text().splitlines()
    (root / "ragged.csv").write_text("\n".join([*lines[:5], "1,2,red", *lines[5:]]) + "\n")
    (root / "text.csv").write_text("\n".join([*lines[:3], "1,abc,red,2", *lines[3:]]) + "\n")
    (root / "one.csv").write_text("a,colour\n1,red\n2,red\n3,red\n")
    for name in ("a", "b"):
        (root / "pics" / name).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (6 + k, 6), (40 * k, 90, 10)).save(root / "pics" / name / f"{k}.png")
    (root / "zero" / "a").mkdir(parents=True)
    (root / "zero" / "b").mkdir(parents=True)
    for name in ("a", "b"):
        for k in range(3):
            Image.new("RGB", (6, 6), (40 * k, 90, 10)).save(root / "zero" / name / f"{k}.png")
    (root / "zero" / "b" / "blank.png").write_bytes(b"")
    (root / "empty").mkdir()
    return {
        "ragged": (["csv", root / "ragged.csv", "--label", "colour"], ["ragged.csv, line 6", "3 values, expected 4"]),
        "text": (["csv", root / "text.csv", "--label", "colour"], ["text.csv, line 4, column 2", "'abc'"]),
        "no label": (["csv", good, "--label", "kind"], ["good.csv", "no label column 'kind'", "a, b, colour, d"]),
        "one class": (["csv", root / "one.csv", "--label", "colour"], ["one.csv", "1 class (only 'red')"]),
        "empty folder": (["images", root / "empty"], ["empty has no class folders"]),
        "zero bytes": (["images", root / "zero"], ["blank.png: not a readable image"]),
        "mixed sizes": (["images", root / "pics"], ["1.png is 6x7 pixels", "give --size HxW"]),
        "bad size": (["images", root / "pics", "--size", "12"], ["--size '12'", "HxW"]),
        "wrong job": (["images", root / "pics", "--label", "x"], ["--label applies to xpnet train csv, not images"]),
        "no source": (["npz"], ["xpnet train npz needs an .npz file"]),
        "extra source": (["mnist", good], ["takes no", "--data-dir"]),
        "hue grey": (["images", root / "pics", "--features", "hue", "--color", "grey"], ["--color grey"]),
        "no cnn": (["csv", good, "--label", "colour", "--model", "cnn"], ["no --model cnn"]),
        "hue cnn": (["images", root / "pics", "--features", "hue", "--model", "cnn"], ["trains on hue histograms"]),
        "cnn layers": (["images", root / "pics", "--size", "8x8", "--model", "cnn", "--hidden", "64,32"],
                       ["one ReLU hidden Dense layer"]),
        "no memory": (["csv", good, "--label", "colour", "--max-in-memory", "0"], ["--max-in-memory 0"]),
        "two tests": (["csv", good, "--label", "colour", "--test-file", good, "--test-fraction", "0.1"],
                      ["--test-file or --test-fraction"]),
    }


CASES = ["ragged", "text", "no label", "one class", "empty folder", "zero bytes", "mixed sizes", "bad size",
         "wrong job", "no source", "extra source", "hue grey", "no cnn", "hue cnn", "cnn layers", "no memory",
         "two tests"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          case: str) -> None:
    args, fragments = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    code, _, err = run(capsys, "train", *args, "--save", out / "m.npz", "--plot", out / "p.png",
                       "--checkpoint-dir", out / "ck", "--epochs", "1")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: ") and "Traceback" not in err, err
    assert all(str(fragment) in lines[0] for fragment in fragments), lines[0]
    assert not out.exists()
