"""Running the ``xpnet`` command as a user would: in a subprocess, or in-process with its output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpnet.cli import main


def xpnet(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m xpnet ARGS`` on the CPU and capture its output."""
    full_env = {**os.environ, "XPNET_DEVICE": "cpu", **(env or {})}
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A failed command: exit code 2, one ``xpnet: error:`` line naming ``fragments``, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("xpnet: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``xpnet ARGS`` run in this process."""
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def one_error(status: int, err: str) -> str:
    """The one ``xpnet: error:`` line of a failed command (exit 2, nothing else on stderr, no traceback)."""
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: "), err
    return lines[0]


def blobs_csv(path: Path, rows: int) -> Path:
    """A CSV file of two separable classes, ``kind`` "x" or "y", with two feature columns ``a`` and ``b``."""
    rng = np.random.default_rng(0)
    labels = np.arange(rows) % 2
    x = rng.normal(size=(rows, 2)) + 3 * labels[:, None]
    path.write_text("a,b,kind\n" + "".join(f"{a},{b},{'yx'[k]}\n" for (a, b), k in zip(x, labels, strict=True)))
    return path
