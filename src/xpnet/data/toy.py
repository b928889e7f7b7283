"""Small synthetic data sets that tutorials train on."""

from __future__ import annotations

import numpy as np


def make_moons(n: int = 100, noise: float = 0.0, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, built as scikit-learn's ``make_moons`` builds them.

    The upper moon (label 0) is ``n // 2`` points on the unit half circle, the lower moon (label 1) the rest,
    on that half circle flipped and shifted by (1, 0.5); rows are shuffled, then Gaussian noise of standard
    deviation ``noise`` is added. Returns float64 points (n, 2) and int64 labels (n,). The same ``seed`` gives
    the same data, though not the same numbers as scikit-learn's generator.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"make_moons needs an integer n >= 2, got {n!r}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}")
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    outer = np.linspace(0, np.pi, n_outer)
    inner = np.linspace(0, np.pi, n_inner)
    x = np.concatenate(
        [
            np.column_stack([np.cos(outer), np.sin(outer)]),
            np.column_stack([1 - np.cos(inner), 1 - np.sin(inner) - 0.5]),
        ]
    )
    y = np.concatenate([np.zeros(n_outer, dtype=np.int64), np.ones(n_inner, dtype=np.int64)])
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return x + rng.normal(0.0, noise, x.shape), y
