"""The protocol every task of the command line implements, and the data options several tasks share.

A task is one object (a ``Task`` subclass instance, listed in ``xpnet.tasks.TASKS``) that says everything the
command line needs to know about one kind of data: its default settings per model kind, its command-line options,
how it loads training data, what a saved model of it is evaluated on, how it turns the files given to ``xpnet
predict`` into features, and the charts it adds to ``--plot``. The CLI loops over the registry; it never names a
task.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xpnet.data.fruits import IMAGE_SUFFIXES
from xpnet.errors import ConfigError, DataError
from xpnet.tasks.common import TaskData

if TYPE_CHECKING:
    from xpnet.backend import Backend
    from xpnet.model import Model


@dataclass(frozen=True, eq=False)  # compared and hashed as the one object each option is
class Option:
    """One data option of ``xpnet train`` (``dest`` its argparse name), added to the parser once whichever tasks
    list it; ``kwargs`` go to ``add_argument``."""

    dest: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(self.flag, help=self.help, **self.kwargs)


TEST_FRACTION = Option("test_fraction", "csv, npz, images: share of each class held out for testing when there is "
                       "no test file, x_test or Test/ folder (default 0.2)", {"type": float})
MAX_IN_MEMORY = Option("max_in_memory", "csv, images: most rows or images held at once; more are read a chunk at a "
                       "time (default: what fits in 1 GiB as float32 features)", {"type": int, "metavar": "N"})
CLASSES = Option("classes", "fruits, images: comma-separated class folders (default fruits: the tutorial's four; "
                 "images: all)")
DATA_DIR = Option("data_dir", "data folder (mnist: default $XPNET_DATA or ~/.cache/xpnet, downloading what is "
                  "missing; fruits: a Fruits-360 folder, required)")


def class_list(text: str | None) -> list[str] | None:
    """``--classes`` as a list of names (None: every class, or the task's default)."""
    return [name.strip() for name in text.split(",")] if text else None


@dataclass
class EvalData:
    """What a saved model is evaluated on: features ``x`` with labels ``y`` (or ``x`` chunks and ``y`` None), and
    the name of the split ("test", "held-out")."""

    x: Any
    y: Any
    name: str = "test"

    @property
    def count(self) -> int:
        return len(self.x) if self.y is None else len(self.y)


class Task:
    """One job of ``xpnet train``. Subclasses set the class attributes and implement ``load``, ``test_data`` and
    ``predict_features``; ``check`` and ``charts`` are optional."""

    name: str = ""
    """The job's name on the command line: ``xpnet train NAME``."""
    source: str | None = None
    """What the positional argument after the job is ("a CSV file"); None: the job reads ``--data-dir``."""
    defaults: dict[str, dict[str, Any]] = {}
    """The settings of each model kind (mlp, cnn) it can train, for every flag left out."""
    default_recipes: dict[str, str] = {}
    """The recipe (``xpnet.recipes``) a model kind trains when no ``--recipe`` is given (``--recipe none``: the
    plain network of ``defaults``)."""
    options: tuple[Option, ...] = ()
    """Its data options (shared ones from this module, its own from its module)."""
    preprocessing_types: tuple[str, ...] = ()
    """The saved ``preprocessing["type"]`` of its models made before models named their job."""
    inputs: str = "image files"
    """What ``xpnet predict`` takes for its models, in the plural."""

    def check(self, args: argparse.Namespace) -> None:
        """ConfigError for a combination of its options that cannot work, before any data is read."""

    def load(self, args: argparse.Namespace, backend: Backend, seed: int) -> TaskData:
        """The training and test data the command line's ``args`` name."""
        raise NotImplementedError

    def test_data(self, model: Model, data: str | None, data_dir: str | None) -> EvalData:
        """What ``xpnet evaluate`` scores ``model`` on: ``data`` (the file or folder given, for a job with a
        ``source``) or the job's own test split under ``data_dir``."""
        raise NotImplementedError

    def predict_features(self, model: Model, path: Path) -> tuple[list[str], Any]:
        """The names (one per sample) and features of one file given to ``xpnet predict``."""
        raise NotImplementedError

    def charts(self, data: TaskData, path: Path) -> list[Path]:
        """Charts of its own beside the training curves at ``path`` (fruits: mean hues); the confusion matrix is
        every task's."""
        return []


def refuse_images(task: Task, path: Path, wanted: str) -> None:
    """DataError when an image file is given to a model that predicts on rows or arrays (``wanted``)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a {task.name} model predicts on {wanted}, not images; give {task.source} of raw "
                        "samples")


def check_max_in_memory(args: argparse.Namespace) -> None:
    """ConfigError for a ``--max-in-memory`` below 1."""
    if args.max_in_memory is not None and args.max_in_memory < 1:
        raise ConfigError(f"--max-in-memory {args.max_in_memory}: must be at least 1")


def chart_path(path: Path, name: str) -> Path:
    """The chart ``name`` beside the training curves at ``path``, in the same format: ``<stem>-<name><suffix>``."""
    return path.with_name(f"{path.stem}-{name}{path.suffix or '.png'}")


def plot_charts(task: Task, data: TaskData, model: Model, plot_path: str | Path) -> list[Path]:
    """The charts beside the training curves at ``plot_path``: the model's confusion matrix on the test set, and
    the task's own."""
    from xpnet.plotting import plot_confusion
    from xpnet.tasks.common import confusion_matrix

    path = Path(plot_path)
    matrix = confusion_matrix(model, data.x_test, data.y_test, len(data.class_names))
    return [plot_confusion(matrix, data.class_names, chart_path(path, "confusion"),
                           f"confusion matrix: the {len(data.x_test)} {data.test_name} samples"),
            *task.charts(data, path)]

