"""Running the ``xpnet`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
