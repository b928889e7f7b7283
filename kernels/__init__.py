"""Fused elementwise kernels, with a plain array-module reference beside every one.

Three interchangeable kernel sets share one set of function names and signatures (see ``sets.py``, where they
are classes: the reference set is the base and the fused sets override what they fuse):

- ``reference``: plain ``xp`` code (NumPy or CuPy); the definition of what each kernel must compute.
- ``cpu``: Numba ``njit`` kernels that fuse each step into one pass over memory.
- ``cuda``: Numba CUDA kernels, for CuPy arrays (loaded only on the GPU backend).

Every kernel writes into output arrays it is given and returns nothing, so callers can preallocate.
Losses accumulate ``stats[0] += sum of per-sample losses`` and ``stats[1] += number of correct samples``
so that a training loop never has to read a scalar back from the device on every step.
"""

from __future__ import annotations

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5

ACTIVATIONS: dict[str, int] = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}

KERNEL_SETS = ("fused", "reference")

KERNEL_FUNCTIONS = (
    "bias_activation",
    "activation_backward",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "squared_error",
    "sgd_update",
    "momentum_update",
    "adam_update",
    "gather_rows",
)

