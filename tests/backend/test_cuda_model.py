"""The whole Model on the CUDA kernel set, under Numba's CUDA simulator when there is no GPU.

A backend named "gpu" whose array module is NumPy loads the CUDA kernels; under the simulator they run on host
arrays. This drives every kernel through the real training loop (argument order, dtypes, index arrays, the
loss statistics) and checks the result against the CPU kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fused_float64_backend
from numba import config

from xpnet.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from xpnet.model import Model, Sequential

pytestmark = pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="runs the CUDA kernels on host arrays: "
                                "needs NUMBA_ENABLE_CUDASIM=1 (set by conftest when there is no GPU)")


@pytest.mark.parametrize(
    ("output", "loss", "optimizer"),
    [("softmax", "cce", "adam"), ("sigmoid", "bce", "momentum"), ("tanh", "mse", "sgd")],
)
def test_training_on_the_cuda_kernels_matches_the_cpu(output, loss, optimizer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 4))
    y = rng.integers(0, 3, 13) if loss == "cce" else (rng.random((13, 3)) > 0.5).astype(float)
    results = []
    for name in ("cpu", "gpu"):
        backend = fused_float64_backend(name, seed=3)
        layers = [Dense(6, "relu", input_dim=4), Dense(5, "leaky_relu", bias=False), Dense(3, output)]
        model = Model(layers, loss, optimizer, lr=0.05, backend=backend)
        assert type(model.backend.kernels).__name__ == ("CudaKernels" if name == "gpu" else "CpuKernels")
        history = model.fit(x, y, epochs=2, batch_size=5, seed=1, verbose=0)
        results.append((model.get_parameters(), history.history["loss"], model.predict_proba(x)))
    for cpu_result, gpu_result in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(gpu_result, cpu_result, rtol=1e-9, atol=1e-12)


def test_a_cnn_with_dropout_and_batch_norm_trains_alike_on_the_cuda_kernels():
    """Same seed, same dropout masks (hashed from seed, step and index), same BatchNorm statistics: the same model."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 5, 5, 2)), rng.integers(0, 3, 6)
    results = []
    for name in ("cpu", "gpu"):
        backend = fused_float64_backend(name, seed=4)
        layers = [Conv2D(3, 3, padding="same", activation="relu"), BatchNorm(0.9), MaxPool2D(2), Dropout(0.4),
                  Flatten(), Dense(3, "softmax")]
        model = Sequential(layers, "cce", "adam", input_shape=(5, 5, 2), lr=0.05, backend=backend)
        model.fit(x, y, epochs=2, batch_size=4, seed=1, verbose=0)
        results.append((model.get_parameters(), model.get_state(), model.predict_proba(x)))
    for cpu_result, gpu_result in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(gpu_result, cpu_result, rtol=1e-9, atol=1e-12)
