"""One rank of the streamed runs in ``test_streamed_ranks.py``, started by ``mpiexec -n N python THIS OUT MODE``.

MODE ``epochs``: trains ``model()`` on ``streamed()`` for EPOCHS epochs, shuffled, writing
``OUT/rank{R}-epoch{E}.npz`` after every epoch, then a fresh model for one epoch unshuffled in batches of ORDERED
(``OUT/rank{R}-ordered.npz``). ``stop``: trains until step STOP_AT, then rank 0 writes a checkpoint into OUT.
``resume``: resumes from that checkpoint to EPOCHS epochs and writes ``OUT/rank{R}-resumed.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from xpnet.backend import get_backend
from xpnet.builders import mlp
from xpnet.checkpoint import load_checkpoint, save_checkpoint
from xpnet.data.chunks import ChunkReader, Spill, chunk_bounds
from xpnet.model import Model

SAMPLES, FEATURES, CLASSES = 150, 8, 3
CHUNK, BATCH, ORDERED, EPOCHS = 30, 12, 6, 2
"""Chunks of 30, 30, 30, 30 and 18 kept samples; batches of 12, 12 and 6 in each (12 and 6 in the last): every
share equal for 2 and 3 ranks. Unshuffled batches of 6 tile every chunk, so they are the resident run's too."""
STOP_AT = 19
"""Epoch 2 (14 steps an epoch), in the middle of its second chunk."""
SETTINGS = {"task": "streamed-test", "epochs": EPOCHS, "batch_size": BATCH}


def arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples, labels and which samples are kept for training (138 of the 150)."""
    rng = np.random.default_rng(2)
    keep = np.ones(SAMPLES, dtype=bool)
    keep[rng.choice(SAMPLES, 12, replace=False)] = False
    return rng.standard_normal((SAMPLES, FEATURES)), rng.integers(0, CLASSES, SAMPLES), keep


def scale(rows: np.ndarray) -> np.ndarray:
    return rows * 0.5 + 1.0


def streamed() -> ChunkReader:
    """The kept samples, spilled to ``.npy`` files of CHUNK samples (each rank its own, as each rank of an
    ``xpnet train`` job parses its data into its own spill) and read back scaled, as the csv job does."""
    x, y, keep = arrays()
    spill = Spill()
    for lo, hi in chunk_bounds(SAMPLES, CHUNK):
        spill.append(x[lo:hi])
    return spill.select(y, keep, scale, FEATURES)


def resident() -> tuple[np.ndarray, np.ndarray]:
    x, y, keep = arrays()
    return scale(x[keep]), y[keep]


def model() -> Model:
    """A small float64 network with Adam, seeded: the same initial parameters on every rank."""
    backend = get_backend("cpu", "float64", seed=5)
    return mlp([FEATURES, 16, CLASSES], "relu", optimizer="adam", lr=1e-2, backend=backend)


def snapshot(trained: Model, logs: dict[str, float]) -> dict[str, np.ndarray]:
    return {"parameters": trained.get_parameters(), "loss": np.array(logs["loss"])}


def stop_at(step: int) -> None:
    """Make every model ask to stop after its step ``step`` (counted over the run)."""
    original = Model.train_step

    def train_step(self: Model, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if self.step == step:
            self.stop_training = True

    Model.train_step = train_step


def refuse_whole_chunks() -> None:
    """Make reading a whole chunk fail: a rank of several reads only its rows."""

    def chunk(self: ChunkReader, index: int) -> None:
        raise AssertionError(f"a rank read the whole of chunk {index}")

    ChunkReader.chunk = chunk


def main() -> None:
    from xpnet.distributed import Communicator

    out, mode = Path(sys.argv[1]), sys.argv[2]
    communicator = Communicator()
    rank = communicator.rank
    if communicator.size > 1:
        refuse_whole_chunks()
    if mode == "epochs":
        def save(trained: Model, epoch: int, logs: dict[str, float]) -> None:
            np.savez(out / f"rank{rank}-epoch{epoch}.npz", **snapshot(trained, logs))

        model().fit(streamed(), None, EPOCHS, BATCH, seed=3, verbose=0, callbacks=[save], communicator=communicator)
        ordered = model()
        history = ordered.fit(streamed(), None, 1, ORDERED, shuffle=False, verbose=0, communicator=communicator)
        np.savez(out / f"rank{rank}-ordered.npz", **snapshot(ordered, {"loss": history.history["loss"][-1]}))
    elif mode == "stop":
        stop_at(STOP_AT)
        net = model()
        history = net.fit(streamed(), None, EPOCHS, BATCH, seed=3, verbose=0, communicator=communicator)
        if rank == 0:
            save_checkpoint(out, net, history, {**SETTINGS, "ranks": communicator.size})
        communicator.barrier()
    else:
        (path,) = out.glob("checkpoint-*.npz")
        found = load_checkpoint(path, device="cpu")
        history = found.model.fit(streamed(), None, EPOCHS, BATCH, verbose=0, history=found.history,
                                  position=found.position, communicator=communicator)
        np.savez(out / f"rank{rank}-resumed.npz", **snapshot(found.model, {"loss": history.history["loss"][-1]}))


if __name__ == "__main__":
    main()
