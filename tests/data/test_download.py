"""The MNIST downloader against a local HTTP server on loopback: success, failover, failure, no leftovers."""

from __future__ import annotations

import functools
import gzip
import http.client
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from xpnet.data import download
from xpnet.data.download import MNIST_FILES, download_mnist, fetch
from xpnet.data.mnist import load_mnist
from xpnet.errors import DataError


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves a folder; ``/short/...`` promises 1000 bytes and sends 10."""

    def do_GET(self) -> None:
        if self.path.startswith("/short/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_root(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``good/``: a copy of the real files; ``bad/``: every file broken in a different way."""
    root = tmp_path_factory.mktemp("mirrors")
    shutil.copytree(shared_data / "mnist", root / "good")
    bad = root / "bad"
    bad.mkdir()
    packed = (shared_data / "mnist" / "train-images-idx3-ubyte.gz").read_bytes()
    (bad / "train-images-idx3-ubyte.gz").write_bytes(packed[: len(packed) // 3])  # truncated gzip
    labels = bytearray(gzip.decompress((shared_data / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[8] = (labels[8] + 1) % 10  # valid gzip, wrong content
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>not found</html>")  # t10k-images: absent (404)
    return root


@pytest.fixture(scope="module")
def server(server_root: Path) -> Iterator[str]:
    """Base URL of a threaded HTTP server on 127.0.0.1 serving ``server_root``."""
    handler = functools.partial(QuietHandler, directory=str(server_root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> str:
    """Never reach the real mirrors or a proxy: the default mirror list is a closed loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    monkeypatch.setattr(download, "MNIST_MIRRORS", (dead,))
    monkeypatch.delenv("XPNET_MNIST_URL", raising=False)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")
    return dead


def assert_same_files(folder: Path, reference: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(MNIST_FILES)  # no temporary files left
    for name in MNIST_FILES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes()


def test_download_from_base_url_then_load(server: str, shared_data: Path, tmp_path: Path) -> None:
    target = download_mnist(tmp_path / "mnist", base_url=server + "good", progress=False)
    assert target == tmp_path / "mnist"
    assert_same_files(target, shared_data / "mnist")
    data = load_mnist(tmp_path)
    assert data.x_train.shape == (60000, 784) and np.bincount(data.y_test)[1] == 1135


def test_load_mnist_downloads_when_asked(server: str, tmp_path: Path) -> None:
    data = load_mnist(tmp_path, download=True, base_url=server + "good/")
    assert len(data.x_test) == 10000
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(MNIST_FILES)


def test_environment_variable_replaces_mirrors(
    server: str, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XPNET_MNIST_URL", server + "good/")
    assert_same_files(download_mnist(tmp_path, progress=True), shared_data / "mnist")


def test_present_files_are_not_downloaded_again(shared_data: Path, tmp_path: Path) -> None:
    for name in MNIST_FILES:
        (tmp_path / name.removesuffix(".gz")).write_bytes(b"")  # any file under either name counts as present
    # The only mirror is dead, so this succeeds only if nothing is fetched.
    assert download_mnist(tmp_path, progress=False) == tmp_path


def test_each_broken_file_fails_over_to_the_next_mirror(
    server: str, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "MNIST_MIRRORS", (server + "bad/", server + "good/"))
    assert_same_files(download_mnist(tmp_path, progress=False), shared_data / "mnist")


def test_all_mirrors_failing_lists_each_url_and_leaves_nothing(
    server: str, offline: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "MNIST_MIRRORS", (server + "bad/", offline))
    with pytest.raises(DataError) as caught:
        download_mnist(tmp_path / "mnist", progress=False)
    message = str(caught.value)
    assert f"{server}bad/train-images-idx3-ubyte.gz: " in message and "not a valid gzip file" in message
    assert f"{offline}train-images-idx3-ubyte.gz: cannot connect" in message
    assert "\n" not in message and "by hand" in caught.value.hint and str(tmp_path / "mnist") in caught.value.hint
    assert not (tmp_path / "mnist").exists()  # the folder it created is removed again


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("train-labels-idx1-ubyte.gz", "checksum mismatch"),
        ("t10k-images-idx3-ubyte.gz", "HTTP Error 404"),
        ("t10k-labels-idx1-ubyte.gz", "checksum mismatch"),
    ],
)
def test_each_kind_of_bad_file_is_refused(server: str, tmp_path: Path, name: str, reason: str) -> None:
    for other in MNIST_FILES:
        if other != name:
            (tmp_path / other).write_bytes(b"")
    with pytest.raises(DataError, match=reason):
        download_mnist(tmp_path, base_url=server + "bad", progress=False)
    assert not (tmp_path / name).exists()
    assert len(list(tmp_path.iterdir())) == 3


def test_fetch_refuses_a_short_response(server: str, tmp_path: Path) -> None:
    with pytest.raises((DataError, http.client.HTTPException)):
        fetch(server + "short/file", tmp_path / "file", progress=False)
    assert not list(tmp_path.iterdir())


def test_fetch_without_checksum(server: str, server_root: Path, tmp_path: Path) -> None:
    dest = fetch(server + "bad/t10k-labels-idx1-ubyte.gz", tmp_path / "sub" / "page.html", progress=False)
    assert dest.read_bytes() == (server_root / "bad" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["page.html"]


def test_a_failed_download_from_the_command_line_is_one_line_and_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from xpnet.cli import main

    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
    for data_dir in (["--data-dir", str(tmp_path / "data")], []):  # a folder given, and the default cache
        assert main(["train", "mnist", "--device", "cpu", "--epochs", "1", *data_dir]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("xpnet: error: could not download"), lines
        assert "by hand" in lines[0] and "XPNET_MNIST_URL" in lines[0]
    assert not list(tmp_path.iterdir())  # neither data/mnist nor cache/mnist (nor their parents) is left behind
