"""One rank of the data-parallel runs in ``test_distributed.py``, started by ``mpiexec -n N python THIS ...``.

    python distributed_target.py OUT KIND EPOCHS [DEVICE]

trains ``model(KIND)`` (``mlp``: 8-16-3, ``batchnorm``: with a BatchNorm layer) on ``task()`` for EPOCHS epochs
with ``fit(..., communicator=Communicator())`` and writes, after every epoch, ``OUT/rank{R}-epoch{E}.npz``
with this rank's parameters and state. The test runs the same model in one process and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from xpnet import BatchNorm, Dense, Model
from xpnet.backend import get_backend
from xpnet.builders import mlp

SAMPLES, FEATURES, CLASSES = 180, 8, 3
BATCH = 24
"""7 full batches and a last one of 12 rows an epoch: every share is equal for 1, 2, 3 and 4 ranks."""


def task() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((SAMPLES, FEATURES)), rng.integers(0, CLASSES, SAMPLES)


def model(kind: str, device: str = "cpu") -> Model:
    """A small float64 network with Adam, seeded: the same initial parameters on every rank."""
    backend = get_backend(device, "float64", seed=5)
    if kind == "batchnorm":
        layers = [Dense(16, activation="relu"), BatchNorm(momentum=0.5), Dense(CLASSES, activation="softmax")]
        return Model(layers, optimizer="adam", lr=1e-2, input_shape=FEATURES, backend=backend)
    return mlp([FEATURES, 16, CLASSES], "relu", optimizer="adam", lr=1e-2, backend=backend)


def snapshot(model: Model) -> dict[str, np.ndarray]:
    return {"parameters": model.get_parameters(), "state": model.get_state(), "stream": np.array(model.trainer.rank)}


def main() -> None:
    from xpnet.distributed import Communicator

    out, kind, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    communicator = Communicator()
    net = model(kind, device)

    def save(trained: Model, epoch: int, logs: dict[str, float]) -> None:
        np.savez(out / f"rank{communicator.rank}-epoch{epoch}.npz", **snapshot(trained), loss=logs["loss"])

    x, y = task()
    net.fit(x, y, epochs, BATCH, seed=3, verbose=0, callbacks=[save], communicator=communicator)


if __name__ == "__main__":
    main()
