"""Models saved as npz + JSON: round trips, atomic writes, and clear refusals of anything else."""

from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet import ModelFileError
from xpnet.builders import mlp
from xpnet.serialization import load_model, read_archive, save_model, write_archive


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    model = mlp([5, 6, 3], "tanh", seed=0, device="cpu", class_names=["a", "b", "c"],
                preprocessing={"type": "custom", "scale": 2.0})
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = save_model(model, tmp_path_factory.mktemp("models") / "model")
    return model, path, x


def test_round_trip_keeps_everything(trained):
    model, path, x = trained
    assert path.suffix == ".npz"
    loaded = load_model(path, device="cpu")
    np.testing.assert_array_equal(loaded.get_parameters(), model.get_parameters())
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(loaded.backend.to_host(loaded.moments), model.backend.to_host(model.moments))
    assert loaded.step == model.step and loaded.class_names == ["a", "b", "c"]
    assert loaded.preprocessing == {"type": "custom", "scale": 2.0}
    assert loaded.optimizer == model.optimizer and loaded.loss.name == model.loss.name
    metadata, _ = read_archive(path)
    assert metadata["xpnet_version"] and metadata["model"]["dtype"] == "float32"


def test_load_in_another_dtype(trained):
    model, path, x = trained
    wide = load_model(path, device="cpu", dtype="float64")
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide.predict_proba(x), model.predict_proba(x), rtol=1e-5)


def test_files_hold_no_pickles(trained):
    _, path, _ = trained
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            with archive.open(name) as member:
                np.lib.format.read_magic(member)
                _, _, dtype = np.lib.format.read_array_header_1_0(member)
                assert not dtype.hasobject


def _expect(path, message):
    with pytest.raises(ModelFileError) as info:
        load_model(path, device="cpu")
    assert message in str(info.value) and str(path) in str(info.value)


def test_refusals(trained, tmp_path):
    _, path, _ = trained
    data = path.read_bytes()
    _expect(tmp_path / "absent.npz", "no such model file")
    (tmp_path / "text.npz").write_text("hello")
    _expect(tmp_path / "text.npz", "not a readable xpnet model file")
    (tmp_path / "half.npz").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "half.npz", "not a readable xpnet model file")
    np.savez(tmp_path / "plain.npz", params=np.zeros(3))
    _expect(tmp_path / "plain.npz", "no xpnet metadata")
    np.savez(tmp_path / "objects.npz", params=np.array([{"a": 1}], dtype=object))
    _expect(tmp_path / "objects.npz", "holds Python objects")
    metadata, arrays = read_archive(path)
    write_archive(tmp_path / "future.npz", arrays, {**metadata, "format_version": 99})
    _expect(tmp_path / "future.npz", "newer than this xpnet")
    write_archive(tmp_path / "short.npz", {"params": arrays["params"][:-1]}, metadata)
    _expect(tmp_path / "short.npz", "needs parameters of shape")
    bad = dict(metadata, model={**metadata["model"], "layers": [{"type": "dense", "units": 3, "activation": "swish"}]})
    write_archive(tmp_path / "arch.npz", arrays, bad)
    _expect(tmp_path / "arch.npz", "unknown activation 'swish'")
    alien = dict(metadata, model={**metadata["model"], "layers": [{"type": "lstm", "units": 3}]})
    write_archive(tmp_path / "alien.npz", arrays, alien)
    _expect(tmp_path / "alien.npz", "unknown layer type 'lstm'")
    wide = [{**layer, "units": layer["units"] + 1} if layer["type"] == "dense" else layer
            for layer in metadata["model"]["layers"]]
    write_archive(tmp_path / "wide.npz", arrays, dict(metadata, model={**metadata["model"], "layers": wide}))
    _expect(tmp_path / "wide.npz", "the file is corrupt or its config was edited")
    write_archive(tmp_path / "nan.npz", {**arrays, "params": np.full_like(arrays["params"], np.nan)}, metadata)
    _expect(tmp_path / "nan.npz", "not finite")


def test_header_claiming_more_than_the_file_holds_is_refused_before_reading(tmp_path):
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    member = np.lib.format.magic(1, 0)
    text = repr(header).encode()
    member += (len(text) + 1).to_bytes(2, "little") + text + b"\n"
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("params.npy", member)
        archive.writestr("__metadata__.npy", b"")
    _expect(tmp_path / "huge.npz", "claims shape")


def test_saving_over_a_model_is_atomic(trained, tmp_path, monkeypatch):
    model, _, _ = trained
    target = save_model(model, tmp_path / "keep.npz")
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", fail)
    with pytest.raises(OSError):
        save_model(model, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_model_files_only_raise_model_file_errors(trained, tmp_path, data):
    _, path, _ = trained
    original = bytearray(path.read_bytes())
    mode = data.draw(st.sampled_from(["flip", "truncate", "random"]))
    if mode == "flip":
        for _ in range(data.draw(st.integers(1, 20))):
            original[data.draw(st.integers(0, len(original) - 1))] ^= data.draw(st.integers(1, 255))
        blob = bytes(original)
    elif mode == "truncate":
        blob = bytes(original[: data.draw(st.integers(0, len(original) - 1))])
    else:
        blob = data.draw(st.binary(max_size=2000))
    target = tmp_path / "fuzzed.npz"
    target.write_bytes(blob)
    with contextlib.suppress(ModelFileError):
        load_model(target, device="cpu")


def test_files_of_the_first_format_still_load_and_predict_the_same():
    """tests/fixtures/model-v1.npz was written by xpnet 0.1.0 (format 1: Dense layers only, no input shape)."""
    data = Path(__file__).parents[1] / "fixtures"
    model = load_model(data / "model-v1.npz", device="cpu")
    expected = np.load(data / "model-v1-expected.npz")
    np.testing.assert_array_equal(model.predict_proba(expected["x"]), expected["proba"])
    assert model.class_names == ["a", "b", "c"] and model.input_shape == (6,) and model.step == 15
    assert read_archive(data / "model-v1.npz")[0]["format_version"] == 1


def test_the_user_facing_api_is_at_the_top_level(tmp_path, capsys):
    import pydoc

    import xpnet

    text = pydoc.render_doc(xpnet, renderer=pydoc.plaintext)
    for name in ("Sequential", "Dense", "Conv2D", "mlp", "cnn", "load_model", "save_model", "load_mnist",
                 "load_fruits"):
        assert name in xpnet.__all__ and f"{name}(" in text, name
    model = xpnet.mlp([4, 3, 2], seed=0, device="cpu")
    written = model.save(tmp_path / "m")
    assert written == tmp_path / "m.npz"
    assert np.array_equal(xpnet.load_model(written, device="cpu").get_parameters(), model.get_parameters())
    summary = model.summary()
    assert capsys.readouterr().out.strip() == summary.strip() and "Total params: 23" in summary
