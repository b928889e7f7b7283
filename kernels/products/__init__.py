"""Matrix products whose shape the BLAS library handles badly: the tall, narrow products of a convolution (many
rows, a small weight matrix), forward, backward and for the weight gradient."""

from __future__ import annotations


def check_product(a, b, out) -> None:
    """Refuse shapes that disagree: a (rows, K), b (K, F), out (rows, F)."""
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        raise ValueError(f"product works on a (rows, K), b (K, F) and out (rows, F), not {a.shape}, {b.shape} and "
                         f"{out.shape}")
    if a.shape[1] != b.shape[0] or out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"a {a.shape}, b {b.shape} and out {out.shape} disagree: out must be (a's rows, b's "
                         f"columns) and a's columns must be b's rows")


def check_weight_gradient(patches, dz, out) -> None:
    """Refuse shapes that disagree: patches (rows, K), dz (rows, F), out (K, F)."""
    if patches.ndim != 2 or dz.ndim != 2 or out.ndim != 2:
        raise ValueError(f"weight_gradient works on patches (rows, K), dz (rows, F) and out (K, F), not "
                         f"{patches.shape}, {dz.shape} and {out.shape}")
    if patches.shape[0] != dz.shape[0] or out.shape != (patches.shape[1], dz.shape[1]):
        raise ValueError(f"patches {patches.shape}, dz {dz.shape} and out {out.shape} disagree: out must be "
                         f"(patches' columns, dz's columns) and the two inputs must have the same rows")
