"""Matrix products whose shape the BLAS library handles badly: the weight gradient of a layer with few weights."""

from __future__ import annotations


def check_weight_gradient(patches, dz, out) -> None:
    """Refuse shapes that disagree: patches (rows, K), dz (rows, F), out (K, F)."""
    if patches.ndim != 2 or dz.ndim != 2 or out.ndim != 2:
        raise ValueError(f"weight_gradient works on patches (rows, K), dz (rows, F) and out (K, F), not "
                         f"{patches.shape}, {dz.shape} and {out.shape}")
    if patches.shape[0] != dz.shape[0] or out.shape != (patches.shape[1], dz.shape[1]):
        raise ValueError(f"patches {patches.shape}, dz {dz.shape} and out {out.shape} disagree: out must be "
                         f"(patches' columns, dz's columns) and the two inputs must have the same rows")
