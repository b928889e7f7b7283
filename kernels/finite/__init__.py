"""Finite data: how many entries of a float array are NaN or infinite.

``Model.fit``, ``evaluate`` and ``predict`` refuse inputs with any (``xpnet.inputs``), once a call. On MNIST's
training set (float32) ``isfinite(x).all()`` took 37 ms and a 47 MB boolean array; this count, one pass over the
rows and nothing allocated, 25 ms on one thread and 17 ms on two (medians of 7, 2-core Intel Xeon VM, 2026-12-06
19:13). A ``fit`` of the MLP on it then spent 16 ms before its first step instead of 40-76 ms.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_count_nonfinite(x: Any, out: Any) -> None:
    """Refuse anything but a C-contiguous float matrix and a one-element int64 count."""
    if x.ndim != 2 or x.dtype.kind != "f" or not x.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous float matrix, got {x.dtype} {x.shape}")
    if out.shape != (1,) or out.dtype != np.int64:
        raise ValueError(f"expected a one-element int64 count, got {out.dtype} {out.shape}")
