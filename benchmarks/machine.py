"""The machine a result was measured on: CPU, GPU and library versions, and a slug naming its results folder."""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks.config import Config
from benchmarks.timing import load_average


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def describe(config: Config) -> dict[str, Any]:
    """CPU, cores, GPU (or why it is absent), OS, and the versions of everything that is timed."""
    gpu = config.backend("gpu").describe() if "gpu" in config.devices else {"absent": config.gpu_absent}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in ("xpnet", "numpy", "numba", "cupy", "torch", "matplotlib")},
        "load_average_at_start": load_average(),
    }


def slug(description: dict[str, Any]) -> str:
    """A folder name from the hardware alone (no hostname): CPU model, core count and GPU name."""
    parts = [description["cpu"], f"{description['cores']}c"]
    if "gpu" in description["gpu"]:
        parts.append(description["gpu"]["gpu"])
    return re.sub(r"[^a-z0-9]+", "-", " ".join(parts).lower()).strip("-")
