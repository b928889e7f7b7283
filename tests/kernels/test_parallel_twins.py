"""The serial/parallel twins of the fused CPU kernels: the switch, and the parallel twin equal to the serial one.

Every twin runs on the calibration's arguments (``benchmarks.parallel_thresholds.CASES``, float32) at a size below
and above typical thresholds; its outputs must equal the serial twin's bit for bit (elementwise kernels trivially;
reductions because they sum fixed blocks of rows whatever the thread count). Agreement with the reference on both
sides of the switch is checked through the kernel sets (``test_conformance``, serial here and parallel below).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_conformance import CASES as KERNEL_CASES
from test_conformance import assert_same, run
from xpnet.kernels import numba_cpu
from xpnet.kernels.numba_cpu import BLOCK_ROWS, TWINS, add_partial_row, row_blocks
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

from benchmarks.parallel_thresholds import CASES


def test_every_twin_has_a_calibration_case() -> None:
    assert set(TWINS) == set(CASES)


def _outputs(name: str, variant: str, elements: int) -> list[Any]:
    """Every array argument of twin ``name`` after ``variant`` ran on a fresh case of about ``elements``."""
    args = CASES[name](elements, np.random.default_rng(elements))
    getattr(TWINS[name], variant)(*args)
    return [a for a in args if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("elements", [1_000, 40_000])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_parallel_twin_equals_the_serial_one_bit_for_bit(name: str, elements: int) -> None:
    for serial, parallel in zip(_outputs(name, "serial", elements), _outputs(name, "parallel", elements),
                                strict=True):
        np.testing.assert_array_equal(parallel, serial)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_the_switch_runs_the_parallel_twin_from_its_threshold_with_threads(name: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    twin, ran = TWINS[name], []
    monkeypatch.setattr(twin, "serial", lambda *args: ran.append("serial"))
    monkeypatch.setattr(twin, "parallel", lambda *args: ran.append("parallel"))
    first = np.zeros(100)
    for threads, threshold in ((2, 101), (2, 100), (1, 100), (1, 0)):
        monkeypatch.setattr(numba_cpu, "threads_in_use", lambda threads=threads: threads)
        monkeypatch.setattr(twin, "threshold", threshold)
        twin(first)
    assert ran == ["serial", "parallel", "serial", "serial"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_the_parallel_side_of_every_switch_agrees_with_the_reference(name: str, dtype: Any,
                                                                     parallel_kernels: None) -> None:
    assert_same(run(CpuKernels(), name, dtype), run(ReferenceKernels(), name, dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 5), (128, 72, 32)])
def test_partial_rows_add_up_as_numpys_sum_over_the_partials(shape: tuple[int, ...], dtype: Any) -> None:
    """The weight gradients' partials, added up row by row inside the kernels, give NumPy's sum bit for bit."""
    partial = np.random.default_rng(shape[0]).standard_normal(shape).astype(dtype)
    out = np.full(shape[1:], np.nan, dtype)
    for r in range(shape[1]):
        add_partial_row(partial, out, r)
    np.testing.assert_array_equal(out, partial.sum(axis=0))


def test_reduction_blocks_depend_on_the_rows_only() -> None:
    assert [row_blocks(n) for n in (0, 1, BLOCK_ROWS, BLOCK_ROWS + 1, 10 * BLOCK_ROWS)] == [1, 1, 1, 2, 10]
