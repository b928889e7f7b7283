"""Reference optimizer updates on flat parameter, gradient and moment buffers."""

from __future__ import annotations

from .. import array_module
from ..registry import kernel


def _normal_or_zero(moment) -> None:
    """Zero, in place, the entries of ``moment`` below its dtype's smallest normal number (``scalar.normal_or_zero``
    says why: a decayed moment never goes subnormal)."""
    xp = array_module(moment)
    xp.copyto(moment, 0, where=xp.abs(moment) < xp.finfo(moment.dtype).tiny)


@kernel()
def sgd_update(p, g, lr: float) -> None:
    """p -= lr * g."""
    p -= lr * g


@kernel()
def momentum_update(p, g, v, lr: float, mu: float) -> None:
    """v = mu * v + g; p -= lr * v (PyTorch's convention)."""
    v *= mu
    v += g
    _normal_or_zero(v)
    p -= lr * v


@kernel()
def adam_update(p, g, m, v, step_size: float, beta1: float, beta2: float, eps: float, bc2_sqrt: float) -> None:
    """Adam: m, v moments; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).

    ``step_size = lr / (1 - beta1**t)`` and ``bc2_sqrt = sqrt(1 - beta2**t)``, computed once per step by the caller,
    which makes this identical to PyTorch's Adam.
    """
    xp = array_module(p)
    m *= beta1
    m += (1 - beta1) * g
    _normal_or_zero(m)
    v *= beta2
    v += (1 - beta2) * g * g
    _normal_or_zero(v)
    p -= step_size * m / (xp.sqrt(v) / bc2_sqrt + eps)


@kernel()
def adam_update_hyper(p, g, m, v, hyper, beta1: float, beta2: float, eps: float) -> None:
    """``adam_update`` with the learning rate and step read from device memory: ``hyper`` is a float64 array
    ``[lr, step]`` (so a recorded graph step replays unchanged while they change); the bias corrections are
    computed from them here, as ``Adam.update`` computes them on the host."""
    xp = array_module(p)
    lr, step = hyper[0], hyper[1]
    step_size = (lr / (1 - beta1**step)).astype(p.dtype)
    bc2_sqrt = xp.sqrt(1 - beta2**step).astype(p.dtype)
    adam_update(p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt)


@kernel()
def sgd_update_hyper(p, g, hyper) -> None:
    """``sgd_update`` with the learning rate read from ``hyper[0]`` (float64 ``[lr, step]`` in device memory)."""
    sgd_update(p, g, hyper[0].astype(p.dtype))


@kernel()
def momentum_update_hyper(p, g, v, hyper, mu: float) -> None:
    """``momentum_update`` with the learning rate read from ``hyper[0]`` (float64 ``[lr, step]``)."""
    momentum_update(p, g, v, hyper[0].astype(p.dtype), mu)
def _clip_scale(xp, norm_sq, clip: float):
    """The factor global-norm clipping scales the gradient by: min(1, clip / (norm + 1e-6)) as PyTorch's
    ``clip_grad_norm_``, ``norm_sq[0]`` the squared norm (a device scalar, never read back); 1 when ``clip`` <= 0."""
    if clip <= 0:
        return 1.0
    return xp.minimum(1.0, clip / (xp.sqrt(norm_sq[0]) + 1e-6))


def _regularized_gradient(p, g, d, norm_sq, clip: float, l2: float):
    """The gradient an update uses: clipped (``_clip_scale``), plus the L2 term ``l2 * d * p`` (``d`` the decay
    mask: 1 for the weights that decay, 0 for the rest)."""
    xp = array_module(p)
    scale = _clip_scale(xp, norm_sq, clip)
    return (g * scale).astype(p.dtype, copy=False) + l2 * d * p


@kernel()
def squared_norm(g, out) -> None:
    """out[0] = sum(g ** 2), accumulated in out's float64: the squared global norm that clipping reads."""
    xp = array_module(g)
    out[0] = xp.sum(xp.square(g.astype(xp.float64)))


@kernel()
def sgd_regularized_update(p, g, d, norm_sq, clip: float, lr: float, l2: float) -> None:
    """p -= lr * (s * g + l2 * d * p), s the clipping factor (``_clip_scale``), ``d`` the decay mask."""
    p -= lr * _regularized_gradient(p, g, d, norm_sq, clip, l2)


@kernel()
def momentum_regularized_update(p, g, v, d, norm_sq, clip: float, lr: float, mu: float, l2: float,
                                nesterov: int) -> None:
    """PyTorch's SGD with momentum (dampening 0): g' = s * g + l2 * d * p; v = mu * v + g'; p -= lr * v, or with
    ``nesterov`` p -= lr * (g' + mu * v)."""
    gr = _regularized_gradient(p, g, d, norm_sq, clip, l2)
    v *= mu
    v += gr
    _normal_or_zero(v)
    p -= lr * (gr + mu * v) if nesterov else lr * v


@kernel()
def adam_regularized_update(p, g, m, v, d, norm_sq, clip: float, step_size: float, beta1: float, beta2: float,
                            eps: float, bc2_sqrt: float, l2: float, decay: float) -> None:
    """Adam (``adam_update``) on the clipped gradient plus the L2 term ``l2 * d * p`` (PyTorch's Adam
    weight_decay), after the decoupled decay p *= 1 - decay * d (AdamW: decay = lr * weight_decay)."""
    xp = array_module(p)
    gr = _regularized_gradient(p, g, d, norm_sq, clip, l2)
    p *= 1 - decay * d
    m *= beta1
    m += (1 - beta1) * gr
    _normal_or_zero(m)
    v *= beta2
    v += (1 - beta2) * gr * gr
    _normal_or_zero(v)
    p -= step_size * m / (xp.sqrt(v) / bc2_sqrt + eps)


@kernel()
def rmsprop_update(p, g, sq, buf, avg, d, norm_sq, clip: float, lr: float, alpha: float, eps: float, l2: float,
                   mu: float, centered: int) -> None:
    """PyTorch's RMSprop on g' = s * g + l2 * d * p: sq = alpha * sq + (1 - alpha) g'^2; with ``centered``
    avg = alpha * avg + (1 - alpha) g' and the denominator sqrt(sq - avg^2) + eps, else sqrt(sq) + eps; with
    momentum ``mu`` > 0 buf = mu * buf + g' / denominator and p -= lr * buf, else p -= lr * g' / denominator.
    ``buf`` and ``avg`` are untouched when unused (then any array: the caller passes an empty one)."""
    xp = array_module(p)
    gr = _regularized_gradient(p, g, d, norm_sq, clip, l2)
    sq *= alpha
    sq += (1 - alpha) * gr * gr
    _normal_or_zero(sq)
    if centered:
        avg *= alpha
        avg += (1 - alpha) * gr
        _normal_or_zero(avg)
        denominator = xp.sqrt(sq - avg * avg) + eps
    else:
        denominator = xp.sqrt(sq) + eps
    if mu > 0:
        buf *= mu
        buf += gr / denominator
        _normal_or_zero(buf)
        p -= lr * buf
    else:
        p -= lr * gr / denominator


@kernel()
def max_norm(w, limit: float) -> None:
    """Keras's MaxNorm on a (fan_in, units) weight matrix: each unit's column w[:, j] scaled by
    min(norm, limit) / (norm + 1e-7), norm its Euclidean norm."""
    xp = array_module(w)
    norms = xp.sqrt((w * w).sum(axis=0))
    w *= xp.minimum(norms, limit) / (norms + 1e-7)
