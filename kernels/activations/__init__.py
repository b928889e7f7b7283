"""Activations: ``bias_activation`` (z += b; a = f(z); d = f'(z)) and ``activation_backward`` (dz, db)."""

from __future__ import annotations

from .. import ACTIVATIONS

_CODES = frozenset(ACTIVATIONS.values())


def check_activation(activation: int) -> None:
    """Refuse an activation code that is not one of ``ACTIVATIONS``' values."""
    if activation not in _CODES:
        raise ValueError(f"unknown activation code {activation}; expected one of {sorted(_CODES)}")


def check_bias_activation(z, b, activation: int, alpha: float, a, d) -> None:
    """``check_activation`` for bias_activation's arguments."""
    check_activation(activation)


def check_activation_backward(da, d, a, activation: int, dz, db) -> None:
    """``check_activation`` for activation_backward's arguments."""
    check_activation(activation)


def check_bias_gradient(dz, db) -> None:
    """Refuse a bias gradient that is not one entry per column of ``dz``'s rows."""
    if dz.ndim != 2 or db.shape != dz.shape[1:]:
        raise ValueError(f"bias_gradient: dz of shape {dz.shape} has no column sums of shape {db.shape}; expected "
                         f"dz as rows (2-D) and db of its columns' count")
