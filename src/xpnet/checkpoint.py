"""Training checkpoints: everything needed to resume a run exactly where it stopped.

A checkpoint is a model archive (see ``archive``) whose metadata also holds the training position (epoch,
batch within the epoch, running totals, the shuffling generator's state), the history so far and the run's
settings. Files are written atomically and named by epoch and batch, so the newest valid one is easy to find;
a file that cannot be read (a machine died at the wrong moment) is skipped with a warning, never trusted.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.archive import checkpoint_files, model_arrays, model_metadata, read_archive, write_archive
from xpnet.backend import Backend
from xpnet.errors import ModelFileError
from xpnet.model import Model
from xpnet.serialization import model_from_archive
from xpnet.trainer import History, TrainingPosition

TEMPORARY = re.compile(r"^\.checkpoint-e\d{5}-b\d{7}\.npz\..+\.tmp$")
"""``atomic_write``'s temporary files for checkpoints: what a run killed while writing one leaves behind."""


@dataclass
class Checkpoint:
    """A model restored from a checkpoint, with what is needed to continue training it."""

    model: Model
    history: History
    position: TrainingPosition
    settings: dict[str, Any]
    path: Path


def describe_position(position: TrainingPosition) -> str:
    """Where a run stands, counted as its checkpoint's name counts (``checkpoint-e00006-b0000123``: "6 epochs and
    123 batches"), so that messages and file names agree."""
    done = f"{position.epoch} epoch{'' if position.epoch == 1 else 's'}"
    return done + (f" and {position.batch} batch{'' if position.batch == 1 else 'es'}" if position.batch else "")


def checkpoint_path(directory: Path, position: TrainingPosition) -> Path:
    return directory / f"checkpoint-e{position.epoch:05d}-b{position.batch:07d}.npz"


def save_checkpoint(
    directory: str | Path, model: Model, history: History, settings: dict[str, Any], keep: int = 2
) -> Path:
    """Write a checkpoint of ``model`` where its current (or latest) fit stands (an untrained one: at the start)
    into ``directory``; keep the newest ``keep``."""
    trainer = model.trainer
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".checkpoint-*.tmp"):  # left by a run killed mid-write; never complete
        if TEMPORARY.match(stale.name):
            stale.unlink(missing_ok=True)
    position = TrainingPosition() if trainer is None else trainer.position
    path = checkpoint_path(directory, position)
    training = {
        "position": position.to_dict(),
        "history": history.to_dict(),
        # the generator's state at the epoch's start (also in the position since format 3; read by older xpnet)
        "shuffle_rng": position.rng_state or (None if trainer is None else trainer.rng.bit_generator.state),
        "settings": settings,
    }
    write_archive(path, model_arrays(model), model_metadata(model, kind="checkpoint", training=training))
    for old in checkpoint_files(directory)[keep:]:
        old.unlink(missing_ok=True)
    return path


def _check_position(position: TrainingPosition) -> None:
    """ValueError unless ``position`` holds counts, finite totals and a usable generator state."""
    counts = (position.epoch, position.batch, position.seen)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise ValueError(f"epoch, batch and samples seen must be counts, got {counts}")
    totals = (position.loss_sum, position.correct)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in totals):
        raise ValueError(f"the running loss and accuracy totals must be finite numbers, got {totals}")
    if position.rng_state is not None:
        np.random.default_rng().bit_generator.state = position.rng_state


def load_checkpoint(
    path: str | Path, *, device: str | None = None, dtype: Any = None, backend: Backend | None = None
) -> Checkpoint:
    """Restore one checkpoint file onto ``backend``, or one built for ``device`` (either device resumes either's
    checkpoints). A checkpoint written before format 3 kept the generator's state at an epoch's start beside the
    position rather than in it: it is moved into the position, so such a checkpoint resumes exactly too."""
    path = Path(path)
    metadata, arrays = read_archive(path)
    training = metadata.get("training")
    if metadata.get("kind") != "checkpoint" or not isinstance(training, dict):
        raise ModelFileError(f"{path}: a saved model, not a checkpoint; there is no training state to resume")
    model = model_from_archive(path, metadata, arrays, device=device, dtype=dtype, backend=backend)
    try:
        history = History.from_dict(training["history"])
        position = TrainingPosition.from_dict(training["position"])
        if position.rng_state is None:
            position.rng_state = training["shuffle_rng"]
        _check_position(position)
        settings = dict(training["settings"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ModelFileError(f"{path}: the training state is incomplete or malformed ({exc!r})") from None
    return Checkpoint(model, history, position, settings, path)


def latest_checkpoint(
    directory: str | Path,
    *,
    device: str | None = None,
    dtype: Any = None,
    backend: Backend | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that loads, or None. Each unreadable one is skipped, with a one-line
    message (which file, why, that an older one is tried) given to ``on_skip``, or else a warning."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for path in checkpoint_files(directory):
        try:
            return load_checkpoint(path, device=device, dtype=dtype, backend=backend)
        except ModelFileError as exc:
            message = f"skipping an unreadable checkpoint: {exc}; trying the next older one"
            if on_skip is None:
                warnings.warn(message, stacklevel=2)
            else:
                on_skip(message)
    return None
