"""The install extras a clean CUDA machine needs: CuPy with its CUDA toolkit libraries and NVIDIA's numba-cuda, for
the same CUDA major version; the install advice the GPU backend gives names extras that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from xpnet.backend_cupy import INSTALL

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _extras() -> dict[str, list[Requirement]]:
    table = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return {extra: [Requirement(line) for line in lines] for extra, lines in table.items()}


@pytest.mark.parametrize("major", ["12", "13"])
def test_a_cuda_extra_installs_cupy_with_its_toolkit_and_numba_cuda(major):
    wanted = {f"cupy-cuda{major}x": {"ctk"}, "numba-cuda": {f"cu{major}"}, "numpy": set()}
    found = {requirement.name: requirement.extras for requirement in _extras()[f"cuda{major}"]}
    assert found == wanted
    # numba-cuda 0.30.4 fails to load under NumPy 2.5 (np.row_stack is gone): the extra keeps NumPy below it
    numpy = next(requirement for requirement in _extras()[f"cuda{major}"] if requirement.name == "numpy")
    assert "2.4.6" in numpy.specifier and "2.5.0" not in numpy.specifier


def test_the_install_advice_names_extras_that_exist():
    named = re.findall(r"xpnet\[(\w+)\]", INSTALL)
    assert named == ["cuda12", "cuda13"] and set(named) <= set(_extras())
