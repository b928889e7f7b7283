"""Atomic writes: complete or untouched, with the permissions a normal write would give."""

from __future__ import annotations

import os

import pytest

from xpnet.fileio import atomic_write


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_new_file_gets_umask_permissions_and_existing_mode_is_kept(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "new.bin") as handle:
            handle.write(b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"a")
    kept.chmod(0o600)
    with atomic_write(kept) as handle:
        handle.write(b"b")
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.read_bytes() == b"b"
