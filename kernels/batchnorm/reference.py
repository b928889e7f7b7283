"""Reference batch normalisation of (rows, channels) matrices (statistics summed in float64)."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel


@kernel()
def batch_norm_train(x, gamma, beta, eps: float, momentum: float, running_mean, running_var, y, xhat,
                     inv_std) -> None:
    """Batch normalisation of x (M, C) by its column statistics (mean, biased variance, summed in float64).

    inv_std = 1 / sqrt(var + eps); xhat = (x - mean) * inv_std; y = gamma * xhat + beta; and, the Keras way,
    running_mean = momentum * running_mean + (1 - momentum) * mean, running_var likewise with var.
    """
    xp = array_module(x)
    mean = x.mean(axis=0, dtype=xp.float64)
    centred = x.astype(xp.float64) - mean
    var = (centred * centred).mean(axis=0)
    inv = 1 / xp.sqrt(var + eps)
    t = x.dtype.type
    xhat[...] = (x - mean.astype(x.dtype)) * inv.astype(x.dtype)
    y[...] = gamma * xhat + beta
    inv_std[...] = inv
    running_mean *= t(momentum)
    running_mean += t(1 - momentum) * mean.astype(x.dtype)
    running_var *= t(momentum)
    running_var += t(1 - momentum) * var.astype(x.dtype)


@kernel()
def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps: float, y) -> None:
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, for x (M, C)."""
    xp = array_module(x)
    y[...] = gamma * (x - running_mean) / xp.sqrt(running_var + x.dtype.type(eps)) + beta


@kernel()
def batch_norm_backward(dy, xhat, gamma, inv_std, dx, dgamma, dbeta) -> None:
    """dbeta = column sums of dy, dgamma = column sums of dy * xhat (both summed in float64);
    dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma), for (M, C) matrices; dx may be dy."""
    xp = array_module(dy)
    m = dy.shape[0]
    t = dy.dtype.type
    db = dy.sum(axis=0, dtype=xp.float64).astype(dy.dtype)
    dg = (dy.astype(xp.float64) * xhat).sum(axis=0).astype(dy.dtype)
    dx[...] = gamma * inv_std / t(m) * (t(m) * dy - db - xhat * dg)
    dbeta[...] = db
    dgamma[...] = dg
