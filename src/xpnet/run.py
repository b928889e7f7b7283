"""One training run as ``xpnet train`` drives it: settings into a model and its optimizer's schedule, checkpoints
after every epoch, ``--resume`` from the newest one, a clean Ctrl-C, and the final test figures. (The loop itself is
``xpnet.trainer``.)"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xpnet.backend import Backend
from xpnet.callbacks import CSVLogger, EarlyStopping
from xpnet.checkpoint import Checkpoint, checkpoint_path, describe_position, latest_checkpoint, save_checkpoint
from xpnet.distributed import Communicator, launched_rank
from xpnet.errors import ConfigError, TrainingError, XpnetError
from xpnet.model import Model
from xpnet.schedules import Cosine, Exponential, OneCycle, Schedule, StepDecay, Warmup
from xpnet.tasks import ADDED_SETTINGS, TaskData, validation_split
from xpnet.trainer import ChunkedData, History, StopFlag

INTERRUPTED_EXIT = 130


class Interrupted(XpnetError):
    """Training stopped on Ctrl-C after finishing its current step."""

    exit_code = INTERRUPTED_EXIT


@dataclass
class RunResult:
    model: Model
    history: History
    test: dict[str, float]
    seconds: float


@contextmanager
def stop_on_sigint(stop: StopFlag) -> Iterator[list[bool]]:
    """The first Ctrl-C requests ``stop`` (the run's flag: it stops after its current step); a second one
    interrupts at once. Yields a list whose one item says whether Ctrl-C was pressed."""
    seen = [False]

    def handler(signum: int, frame: Any) -> None:
        if seen[0]:
            raise KeyboardInterrupt
        seen[0] = True
        stop.request()
        if launched_rank() == 0:  # every rank of an MPI job gets the Ctrl-C: one line is enough
            print("\ninterrupted: finishing the current step (press Ctrl-C again to abort at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def refuse_conflicts(found: Checkpoint, settings: dict[str, Any], given: Collection[str]) -> None:
    """ConfigError naming the first setting in ``given`` (the flags the user set) that differs from the checkpoint's:
    a resumed run keeps its saved settings, so a different one would be silently ignored. Epochs may change. A
    setting newer than the checkpoint counts as what the run had (``ADDED_SETTINGS``)."""
    for key in sorted(set(given) - {"epochs"}):
        saved, asked = found.settings.get(key, ADDED_SETTINGS.get(key)), settings[key]
        if saved != asked:
            shown = [0 if key == "batch_size" and value is None else value for value in (asked, saved)]  # full batch
            raise ConfigError(
                f"--resume: --{key.replace('_', '-')} {shown[0]} conflicts with the checkpoint's {shown[1]} "
                f"({found.path}); leave the flag out to resume, or start a new run without --resume"
            )


def early_stopping(patience: int | None, model: Model, history: History) -> EarlyStopping | None:
    """The ``--patience`` stopper on the validation loss, brought up to date with the epochs ``history`` holds: its
    state follows from them, so a resumed run stops exactly where an uninterrupted one would. None without one."""
    if patience is None:
        return None
    stopper = EarlyStopping("val_loss", patience, restore_best=False)
    for epoch, value in zip(history.epoch, history.history.get("val_loss", []), strict=False):
        stopper(model, epoch, {"val_loss": value})  # outside a fit: its stop request goes nowhere
    return stopper


def schedule(settings: dict[str, Any], steps_per_epoch: int) -> Schedule | None:
    """The ``--schedule`` of a run's settings over its ``epochs`` of ``steps_per_epoch`` steps, after a linear
    ``--warmup`` over its first epochs when it has one (None: a constant rate). Step decay multiplies the rate by
    0.1 after every third of the epochs after the warm-up, exponential decay reaches 1% of it at the end."""
    name, warmup = settings.get("schedule"), settings.get("warmup") or 0
    span = max(settings["epochs"] - warmup, 0)
    main: Schedule | None = None
    if name == "cosine":
        main = Cosine(span)
    elif name == "onecycle":
        main = OneCycle(max(span, 1), steps_per_epoch if max(span, 1) * steps_per_epoch > 1 else 2)
    elif name == "step":
        main = StepDecay(max(1, span // 3))
    elif name == "exponential":
        main = Exponential(0.01 ** (1 / max(span, 1)))
    return Warmup(warmup, main) if warmup else main


def steps_per_epoch(x: Any, batch_size: int | None) -> int:
    """The steps of an epoch over ``x`` (arrays or streamed chunks) in batches of ``batch_size`` (None: full)."""
    lengths = list(x.chunk_lengths) if isinstance(x, ChunkedData) else [len(x)]
    batch = min(batch_size or sum(lengths), sum(lengths))
    return sum(math.ceil(length / batch) for length in lengths)


def run_training(
    task: TaskData,
    build_model: Callable[[], Model],
    settings: dict[str, Any],
    *,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    log_csv: str | None = None,
    given: Collection[str] = (),
    backend: Backend | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
    communicator: Communicator | None = None,
    graph: str = "auto",
) -> RunResult:
    """Train (or resume) a model on ``task`` with ``settings`` (epochs, batch_size, lr, schedule, seed, task,
    validation_split).

    With ``checkpoint_dir`` a checkpoint is written after every epoch and on Ctrl-C; ``resume`` continues from the
    newest valid one there, with its saved settings and shuffling state (``epochs`` may be raised when given, else
    the saved count holds; any other setting named in ``given``, the ones the user chose, must match the saved
    one), onto ``backend`` (the one the new model would have been built on). The optimizer gets the settings' base
    ``lr`` and ``schedule`` over ``epochs``. ``validation_split`` of the training set is held out (stratified,
    seeded) for the per-epoch validation figures; the test set is evaluated once, at the end. ``graph`` is
    ``Model.fit``'s (graph steps: "auto", "on", "off").
    ``log_csv`` names a CSV file each epoch's figures are appended to (``CSVLogger``; a resumed run continues it).

    With a ``communicator`` this is one rank of a data-parallel run (see ``xpnet.distributed``): every rank must
    be given the same settings and data, and rank 0 alone writes the checkpoints (into a folder every rank can
    read, for a resume) and the CSV log. A run resumes from a checkpoint of the same rank count, or of any as a
    single process.
    """
    ranks = 1 if communicator is None else communicator.size
    if communicator is not None:
        device = None if backend is None else [backend.name, backend.dtype.name, backend.kernel_mode]
        communicator.check_same({"settings": settings, "device": device})
    if resume and not checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir, the folder the interrupted run wrote its checkpoints to")
    history, position = None, None
    if resume:
        found = latest_checkpoint(checkpoint_dir, backend=backend,
                                  on_skip=lambda message: log(f"note: {message}"))
        if found is None:
            raise ConfigError(f"--resume: no readable checkpoint in {checkpoint_dir}; start without --resume")
        if found.settings.get("task") != settings["task"]:
            raise ConfigError(
                f"--resume: {found.path} is a {found.settings.get('task')!r} run, not {settings['task']!r}"
            )
        refuse_conflicts(found, settings, given)
        written_by = found.settings.get("ranks", 1)
        if ranks > 1 and written_by != ranks:
            raise ConfigError(
                f"--resume: {found.path} was written by a run of {written_by} rank(s), not {ranks}: resume it with "
                f"mpiexec -n {written_by}, or as a single process"
            )
        model, history, position = found.model, found.history, found.position
        settings = {**found.settings, "epochs": settings["epochs"] if "epochs" in given else found.settings["epochs"]}
        stopper = early_stopping(settings.get("patience"), model, history)
        if stopper is not None and stopper.stopped_epoch:
            log(f"the run in {checkpoint_dir} is already complete: it stopped early after epoch "
                f"{stopper.stopped_epoch} (--patience {stopper.patience}; best validation loss at epoch "
                f"{stopper.best_epoch}); nothing to train")
            settings["epochs"] = position.epoch
        elif position.epoch >= settings["epochs"]:
            log(f"the run in {checkpoint_dir} is already complete ({found.path.name}: {describe_position(position)} "
                f"of {settings['epochs']}); nothing to train. Give a larger --epochs to train further")
        else:
            log(f"resuming from {found.path} ({describe_position(position)} done)")
    else:
        model = build_model()
        stopper = early_stopping(settings.get("patience"), model, History())
    settings = {**settings, "ranks": ranks}
    if model.backend.notice:
        log(f"note: {model.backend.notice}")
    if verbose:
        model.summary(print_fn=log)

    history = history or History()
    last_good = found.path if resume else None

    def checkpoint(trained: Model, epoch: int, logs: dict[str, float]) -> None:
        nonlocal last_good
        last_good = save_checkpoint(checkpoint_dir, trained, history, settings)

    optimizer = model.optimizer
    # the settings' rate is the base rate (a checkpoint before format 3 saved the last step's decayed one)
    optimizer.lr = settings.get("lr", optimizer.lr)
    first_rank = communicator is None or communicator.rank == 0
    writer = checkpoint_dir is not None and first_rank
    logger = CSVLogger(log_csv, append=resume) if log_csv is not None and first_rank else None
    callbacks = [c for c in (stopper, logger, checkpoint if writer else None) if c is not None]
    x_train, y_train, validation = validation_split(task, settings.get("validation_split") or 0.0, settings["seed"])
    optimizer.schedule = schedule(settings, steps_per_epoch(x_train, settings["batch_size"]))
    stopped_before = stopper.stopped_epoch if stopper else 0
    started = time.perf_counter()
    stop = StopFlag()
    with stop_on_sigint(stop) as interrupted:
        try:
            history = model.fit(
                x_train, y_train, settings["epochs"], settings["batch_size"],
                validation_data=validation, seed=None if resume else settings["seed"],
                verbose=verbose, callbacks=callbacks,
                history=history, position=position, stop=stop, communicator=communicator, graph=graph,
            )
        except TrainingError as exc:
            kept = f" The last good checkpoint is kept: {last_good}." if last_good else ""
            raise TrainingError(f"{exc}.{kept}", hint=exc.hint) from None
    if interrupted[0] if communicator is None else communicator.any(interrupted[0]):
        where = f"{describe_position(model.position)} done"
        if checkpoint_dir:
            path = save_checkpoint(checkpoint_dir, model, history, settings) if writer else None
            if communicator is not None:  # every rank waits for rank 0's checkpoint
                communicator.barrier()
            path = path or checkpoint_path(Path(checkpoint_dir), model.position)
            raise Interrupted(f"stopped with {where}; checkpoint written to {path}. Resume with the same command "
                              f"plus --resume")
        raise Interrupted(f"stopped with {where}; nothing saved (use --checkpoint-dir DIR to be able to resume)")
    seconds = time.perf_counter() - started
    if stopper is not None and stopper.stopped_epoch > stopped_before:
        log(f"stopped early after epoch {stopper.stopped_epoch}: the validation loss has not improved for "
            f"{stopper.patience} epoch{'' if stopper.patience == 1 else 's'} (best at epoch {stopper.best_epoch})")
    test = model.evaluate(task.x_test, task.y_test)
    return RunResult(model, history, test, seconds)
