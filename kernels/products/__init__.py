"""Matrix products whose shape the BLAS library handles badly: the tall, narrow products of a convolution (many
rows, a small weight matrix), forward, backward and for the weight gradient."""

from __future__ import annotations


def _check_matrices(kernel: str, operands: dict, expected: tuple, rule: str) -> None:
    """Refuse ``operands`` (name: (array, role)) unless all are matrices whose shapes are ``expected`` (in order)."""
    shapes = tuple(array.shape for array, _ in operands.values())
    if shapes != expected or any(len(shape) != 2 for shape in shapes):
        described = ", ".join(f"{name} {role}" for name, (_, role) in operands.items())
        given = ", ".join(str(shape) for shape in shapes)
        raise ValueError(f"{kernel} works on {described}, not {given}: {rule}")


def check_product(a, b, out) -> None:
    """Refuse shapes that disagree: a (rows, K), b (K, F), out (rows, F). (The first test passes good shapes in
    a fraction of a microsecond: every step makes several products.)"""
    if a.ndim == b.ndim == out.ndim == 2 and out.shape == (a.shape[0], b.shape[1]) and a.shape[1] == b.shape[0]:
        return
    rows, k = a.shape if a.ndim == 2 else (-1, -1)
    f = b.shape[1] if b.ndim == 2 else -1
    _check_matrices("product", {"a": (a, "(rows, K)"), "b": (b, "(K, F)"), "out": (out, "(rows, F)")},
                    ((rows, k), (k, f), (rows, f)), "out must be (a's rows, b's columns) and a's columns b's rows")


def check_weight_gradient(patches, dz, out) -> None:
    """Refuse shapes that disagree: patches (rows, K), dz (rows, F), out (K, F) (good shapes pass the first test)."""
    if (patches.ndim == dz.ndim == out.ndim == 2 and out.shape == (patches.shape[1], dz.shape[1])
            and patches.shape[0] == dz.shape[0]):
        return
    rows, k = patches.shape if patches.ndim == 2 else (-1, -1)
    f = dz.shape[1] if dz.ndim == 2 else -1
    _check_matrices("weight_gradient",
                    {"patches": (patches, "(rows, K)"), "dz": (dz, "(rows, F)"), "out": (out, "(K, F)")},
                    ((rows, k), (rows, f), (k, f)),
                    "out must be (patches' columns, dz's columns) and the two inputs must have the same rows")
