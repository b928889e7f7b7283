"""AdamW, RMSprop, Nesterov, weight decay, clipping, max-norm, label smoothing and the schedules: equal to PyTorch's
``torch.optim`` / ``cross_entropy`` / ``OneCycleLR`` to 1e-9 in float64, on every kernel set (the CUDA set under
the simulator), and the plain optimizers keep their fast path."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from xpnet.kernels.cuda_set import CudaKernels
from xpnet.kernels.sets import CpuKernels, ReferenceKernels

from xpnet.builders import mlp
from xpnet.errors import ConfigError
from xpnet.layers import Activation, BatchNorm, Conv2D, Dense, Flatten, Reshape
from xpnet.losses import get_loss
from xpnet.model import Model
from xpnet.optimizers import (
    SGD,
    Adam,
    AdamW,
    DecayTargets,
    Momentum,
    Nesterov,
    Optimizer,
    RMSprop,
    get_optimizer,
)
from xpnet.schedules import Cosine, Exponential, OneCycle, StepDecay, Warmup, get_schedule
from xpnet.serialization import load_model, save_model

torch = pytest.importorskip("torch")

SETS = {"reference": ReferenceKernels, "cpu": CpuKernels, "cuda": CudaKernels}
DECAYED = 8  # of the 12 parameters: the first 8 decay (a layer's weights), the last 4 not (its biases)


def _torch_optimizer(optimizer: Optimizer, params: list[Any]) -> Any:
    """The torch.optim equivalent of ``optimizer`` over [weights, biases], weight decay on the weights only."""
    wd = optimizer.weight_decay
    groups = [{"params": [params[0]], "weight_decay": wd}, {"params": [params[1]], "weight_decay": 0.0}]
    lr = optimizer.lr
    if isinstance(optimizer, RMSprop):
        return torch.optim.RMSprop(groups, lr=lr, alpha=optimizer.alpha, eps=optimizer.eps,
                                   momentum=optimizer.momentum, centered=optimizer.centered, foreach=False)
    if isinstance(optimizer, Adam):
        cls = torch.optim.AdamW if isinstance(optimizer, AdamW) else torch.optim.Adam
        return cls(groups, lr=lr, betas=(optimizer.beta1, optimizer.beta2), eps=optimizer.eps, foreach=False)
    momentum = getattr(optimizer, "momentum", 0.0)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=isinstance(optimizer, Nesterov),
                           foreach=False)


OPTIMIZERS = {
    "sgd + L2": SGD(lr=0.1, weight_decay=0.05),
    "momentum + L2 + clip": Momentum(lr=0.05, momentum=0.8, weight_decay=0.01, clip_norm=1.0),
    "nesterov": Nesterov(lr=0.05),
    "nesterov + L2 + clip": Nesterov(lr=0.05, momentum=0.9, weight_decay=0.02, clip_norm=0.7),
    "adam + L2": Adam(lr=0.01, weight_decay=0.05),
    "adam + clip": Adam(lr=0.01, clip_norm=0.5),
    "adamw": AdamW(lr=0.01, beta1=0.7, beta2=0.9),
    "adamw + clip": AdamW(lr=0.01, weight_decay=0.1, clip_norm=1.5),
    "rmsprop": RMSprop(lr=0.01),
    "rmsprop + momentum + L2": RMSprop(lr=0.01, momentum=0.9, weight_decay=0.01),
    "rmsprop centred": RMSprop(lr=0.01, alpha=0.9, centered=True, clip_norm=1.0),
    "rmsprop centred + momentum": RMSprop(lr=0.005, momentum=0.5, centered=True, weight_decay=0.1),
}


def _targets(xp: Any, size: int) -> DecayTargets:
    mask = np.zeros(size)
    mask[:DECAYED] = 1.0
    return DecayTargets(xp.asarray(mask), [], xp.asarray(np.zeros(1)))


@pytest.mark.parametrize("set_name", sorted(SETS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_equals_torch_optim_in_float64(name: str, set_name: str) -> None:
    optimizer = OPTIMIZERS[name]
    kernels = SETS[set_name]()
    rng = np.random.default_rng(5)
    p = rng.standard_normal(12)
    moments = np.zeros((optimizer.slots, 12))
    weights, biases = (torch.tensor(part.copy(), requires_grad=True) for part in (p[:DECAYED], p[DECAYED:]))
    reference = _torch_optimizer(optimizer, [weights, biases])
    targets = _targets(np, 12)
    for step in range(1, 7):
        g = rng.standard_normal(12) * (3.0 if step % 2 else 0.2)  # some steps clip, some do not
        optimizer.update(kernels, p, g.copy(), moments, step, 0.0, targets)
        weights.grad, biases.grad = torch.tensor(g[:DECAYED]), torch.tensor(g[DECAYED:])
        if optimizer.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_([weights, biases], optimizer.clip_norm, foreach=False)
        reference.step()
        expected = np.concatenate([weights.detach().numpy(), biases.detach().numpy()])
        np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-9)


class _Recorder:
    """A kernel set that records the kernels called (and runs none)."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.called.append(name)


@pytest.mark.parametrize(("optimizer", "kernel"), [(SGD(), "sgd_update"), (Momentum(), "momentum_update"),
                                                   (Adam(), "adam_update"), (AdamW(weight_decay=0.0), "adam_update")])
def test_without_decay_or_clipping_the_plain_kernel_runs_alone(optimizer: Optimizer, kernel: str) -> None:
    recorder = _Recorder()
    optimizer.update(recorder, None, None, [None, None], 1, 0.0, None)
    assert recorder.called == [kernel]


def test_clipping_reads_the_norm_from_a_device_scalar_and_max_norm_follows_the_update() -> None:
    recorder = _Recorder()
    targets = DecayTargets(None, ["w1", "w2"], None)
    Adam(clip_norm=1.0, max_norm=3.0).update(recorder, None, None, [None, None], 1, 0.0, targets)
    assert recorder.called == ["squared_norm", "adam_regularized_update", "max_norm", "max_norm"]


def test_regularisers_need_the_models_targets() -> None:
    with pytest.raises(ConfigError, match="decay targets"):
        AdamW().update(CpuKernels(), np.zeros(3), np.zeros(3), np.zeros((2, 3)), 1)


@pytest.mark.parametrize("bad", [{"weight_decay": -1.0}, {"clip_norm": 0.0}, {"max_norm": -2.0},
                                 {"clip_norm": float("nan")}])
def test_bad_regulariser_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Adam(**bad)


def test_rmsprop_settings_are_checked_and_its_slots_follow_the_options() -> None:
    assert [RMSprop().slots, RMSprop(momentum=0.9).slots, RMSprop(momentum=0.9, centered=True).slots] == [1, 2, 3]
    with pytest.raises(ConfigError, match="centered"):
        RMSprop(centered=1)
    with pytest.raises(ConfigError, match="Nesterov"):
        Nesterov(momentum=0.0)


def test_optimizers_by_name_take_keyword_options_and_round_trip_their_config() -> None:
    optimizer = get_optimizer("adamw", 3e-3, weight_decay=0.05, clip_norm=1.0,
                              schedule=Warmup(1, OneCycle(4, steps_per_epoch=10)))
    assert isinstance(optimizer, AdamW) and optimizer.weight_decay == 0.05
    again = get_optimizer(optimizer.config())
    assert again.config() == optimizer.config() and again.schedule == optimizer.schedule
    assert "weight_decay" not in Adam().config()  # a plain optimizer's saved config is as before


def _small_model(**options: Any) -> Model:
    layers = [Reshape((6, 6, 1)), Conv2D(3, 3, activation="relu"), BatchNorm(), Flatten(), Dense(5), Activation("relu"),
              Dense(4, "softmax")]
    return Model(layers, input_shape=36, device="cpu", dtype="float64", seed=2, **options)


def test_the_decay_mask_covers_dense_and_conv2d_kernels_only() -> None:
    model = _small_model()
    mask = model.decay_targets.mask
    expected = []
    for layer in model.layers:
        for name, shape in layer.parameter_shapes().items():
            expected.append(np.full(int(np.prod(shape)), 1.0 if name == "W" else 0.0))
    np.testing.assert_array_equal(mask, np.concatenate(expected))
    assert [w.shape for w in model.decay_targets.weights] == [(9, 3), (48, 5), (5, 4)]
    assert mask.sum() == 9 * 3 + 48 * 5 + 5 * 4  # no bias, no BatchNorm scale or shift


def test_max_norm_keeps_every_units_weights_within_the_limit_like_keras() -> None:
    model = _small_model(optimizer=SGD(lr=0.5, max_norm=0.5))
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((32, 36)), rng.integers(0, 4, 32), epochs=1, batch_size=8, verbose=0, seed=0)
    for weights in model.decay_targets.weights:
        assert np.linalg.norm(weights, axis=0).max() <= 0.5 + 1e-9
    w = rng.standard_normal((6, 4)) * [1.0, 3.0, 0.1, 2.0]
    norms = np.linalg.norm(w, axis=0)
    keras = w * np.clip(norms, 0, 1.5) / (1e-7 + norms)  # tf.keras.constraints.MaxNorm(1.5) on axis 0
    for kernels in (ReferenceKernels(), CpuKernels()):
        out = w.copy()
        kernels.max_norm(out, 1.5)
        np.testing.assert_allclose(out, keras, rtol=1e-12)


@pytest.mark.parametrize("set_name", sorted(SETS))
def test_label_smoothing_equals_torch_cross_entropy(set_name: str) -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((7, 5)) * 3
    labels = rng.integers(0, 5, 7)
    y = np.eye(5)[labels]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    a = e / e.sum(axis=1, keepdims=True)
    dz, stats = np.zeros_like(z), np.zeros(2)
    get_loss({"name": "categorical_crossentropy", "label_smoothing": 0.2}).gradient(SETS[set_name](), z, a, y, dz,
                                                                                     stats)
    logits = torch.tensor(z, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels), label_smoothing=0.2)
    loss.backward()
    np.testing.assert_allclose(stats[0] / 7, loss.item(), rtol=1e-9)
    np.testing.assert_allclose(dz, logits.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert stats[1] == (a.argmax(axis=1) == labels).sum()


def test_label_smoothing_is_checked_and_saved_with_the_model(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="label_smoothing"):
        get_loss("cce", label_smoothing=1.0)
    model = mlp([4, 3], loss=get_loss("cce", label_smoothing=0.1), optimizer=AdamW(), device="cpu")
    loaded = load_model(save_model(model, tmp_path / "m.npz"))
    assert loaded.loss.label_smoothing == 0.1 and loaded.optimizer.config() == model.optimizer.config()
    assert mlp([4, 3], device="cpu").config()["loss"] == "categorical_crossentropy"  # unchanged without options


@pytest.mark.parametrize(("epochs", "steps", "pct_start"), [(3, 7, 0.3), (2, 50, 0.25), (1, 10, 0.5)])
def test_one_cycle_gives_torchs_one_cycle_lr_per_step(epochs: int, steps: int, pct_start: float) -> None:
    schedule = OneCycle(epochs, steps, pct_start=pct_start, div_factor=20.0, final_div_factor=100.0)
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=epochs, steps_per_epoch=steps,
                                                pct_start=pct_start, div_factor=20.0, final_div_factor=100.0,
                                                cycle_momentum=False)
    for k in range(epochs * steps):
        progress = k // steps + (k % steps) / steps  # as the trainer computes it
        assert schedule.rate(0.1, progress) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()


def test_warmup_step_and_exponential_schedules() -> None:
    warm = Warmup(2, Cosine(4))
    assert [warm.rate(1.0, p) for p in (0.0, 0.5, 1.0, 2.0, 4.0, 6.0)] == pytest.approx([0, 0.25, 0.5, 1, 0.5, 0])
    assert Warmup(1).rate(0.1, 5.0) == 0.1
    step = StepDecay(2, 0.5)
    assert [step.rate(1.0, p) for p in (0.0, 1.99, 2.0, 4.5)] == [1.0, 1.0, 0.5, 0.25]
    exponential = Exponential(0.5)
    assert exponential.rate(2.0, 1.0) == 1.0 and exponential.rate(2.0, 0.5) == pytest.approx(2 * 0.5**0.5)
    for schedule in (warm, step, exponential, OneCycle(3, 4)):
        assert get_schedule(schedule.config()) == schedule
    with pytest.raises(ConfigError, match="warm-up"):
        Warmup(1, Warmup(1))
    with pytest.raises(ConfigError, match="gamma"):
        StepDecay(1, 1.5)


def test_clipping_costs_no_host_read_back() -> None:
    """The norm stays in the float64 device scalar: the update reads it there (a host float would need a sync)."""
    targets = _targets(np, 12)
    kernels = SimpleNamespace(squared_norm=CpuKernels().squared_norm,
                              sgd_regularized_update=lambda p, g, d, norm_sq, *rest: seen.append(norm_sq))
    seen: list[Any] = []
    SGD(clip_norm=1.0).update(kernels, np.zeros(12), np.full(12, 2.0), np.zeros((0, 12)), 1, 0.0, targets)
    assert seen[0] is targets.norm_sq and targets.norm_sq[0] == 48.0
