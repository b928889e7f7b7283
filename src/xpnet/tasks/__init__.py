"""The jobs of ``xpnet train`` (mnist, fruits, csv, npz, images) as plugins, and the registry the CLI loops over.

``xpnet.tasks`` is the command line's side of the data: each module here is one job, a ``Task`` (see
``xpnet.tasks.base``) that knows its defaults, options, loading, evaluation data, predict features and charts.
``xpnet.data`` is the other side: plain readers of raw files (IDX, CSV, image folders) and the MNIST download,
which know nothing of models or the command line.

Adding a job is one module and one entry in ``TASKS``: write ``xpnet/tasks/<name>.py`` with a ``Task`` subclass
(``name``, ``defaults``, ``options``, ``load``, ``test_data``, ``predict_features``) whose ``load`` saves
``"job": name`` in the preprocessing, end it with ``TASK = <Name>Task()``, and add that object below.
"""

from __future__ import annotations

from typing import Any

from xpnet.errors import ModelFileError
from xpnet.tasks import csv, fruits, images, mnist, npz
from xpnet.tasks.base import Task
from xpnet.tasks.common import (
    ADDED_SETTINGS,
    HOLDOUT_FRACTION,
    MODEL_KINDS,
    TaskData,
    build_model,
    check_classes,
    confusion_matrix,
    holdout_mask,
    holdout_split,
    sizes,
    validation_split,
)

TASKS: dict[str, Task] = {task.name: task for task in (mnist.TASK, fruits.TASK, csv.TASK, npz.TASK, images.TASK)}
"""Every job of ``xpnet train``, by name."""

TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {name: task.defaults for name, task in TASKS.items()}
"""What `xpnet train TASK --model KIND` uses for every setting the command line leaves out."""

PYTHON_PREPROCESSING_HINT = (
    "a model built in Python needs the preprocessing of the job whose inputs it takes: for an MNIST digit model, "
    "build it with preprocessing=xpnet.tasks.mnist.preprocessing() (or set model.preprocessing to it) and save it "
    "again; otherwise predict from Python with Model.predict"
)


def task_of(preprocessing: dict[str, Any], model: str = "the model") -> Task:
    """The job a saved model's ``preprocessing`` came from (its ``job``, or for older models its ``type``);
    ModelFileError saying what to do when it has none (a model saved from Python without one)."""
    job = preprocessing.get("job")
    if job in TASKS:
        return TASKS[job]
    kind = preprocessing.get("type")
    for task in TASKS.values():
        if kind is not None and kind in task.preprocessing_types:
            return task
    what = "no preprocessing" if not preprocessing else f"an unknown preprocessing (type {kind!r}, job {job!r})"
    raise ModelFileError(f"{model} has {what}, so the command line cannot prepare its inputs",
                         hint=PYTHON_PREPROCESSING_HINT)


__all__ = [
    "ADDED_SETTINGS", "HOLDOUT_FRACTION", "MODEL_KINDS", "TASKS", "TASK_DEFAULTS", "Task", "TaskData", "build_model",
    "check_classes", "confusion_matrix", "holdout_mask", "holdout_split", "sizes", "task_of", "validation_split",
]
