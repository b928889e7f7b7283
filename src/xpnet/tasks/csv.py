"""The csv job, your own CSV file: numeric feature columns and one label column (text or whole numbers),
standardised with the training rows' mean and standard deviation per column (saved in the model, so ``predict``
takes raw rows).

The test rows are a second file, or a stratified, seeded fraction of the file. When the rows do not fit the
memory bound, they are parsed once into a spill on disk and training reads them back a chunk at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnet.data.chunks import MAX_CHUNK, samples_in_memory
from xpnet.data.table import CsvScan, csv_columns, scan_csv
from xpnet.errors import ConfigError, DataError, ModelFileError
from xpnet.scaling import RunningStats, Standardizer
from xpnet.tasks.base import MAX_IN_MEMORY, TEST_FRACTION, EvalData, Option, Task, check_max_in_memory, refuse_images
from xpnet.tasks.common import TaskData, check_classes, holdout_split, mlp_defaults

if TYPE_CHECKING:
    from xpnet.backend import Backend
    from xpnet.model import Model


def _split(scan: CsvScan, mask: np.ndarray, scaler: Standardizer) -> tuple[Any, np.ndarray | None]:
    """The rows ``mask`` selects, scaled: arrays when the scan kept the file's rows, else chunks from its spill."""
    if scan.spill is not None:
        return scan.spill.select(scan.labels, mask, scaler.transform, len(scan.columns.features)), None
    return scaler.transform(scan.features[mask]), scan.labels[mask]


def load_task(
    path: str | os.PathLike,
    label: str | None,
    *,
    header: bool = True,
    test_fraction: float | None = None,
    test_file: str | os.PathLike | None = None,
    seed: int = 0,
    max_in_memory: int | None = None,
) -> TaskData:
    """Train and test rows of a CSV file (and ``test_file``), scaled with the training rows' statistics."""
    if label is None:
        raise ConfigError("xpnet train csv needs --label COLUMN: the name (or number) of the class-label column")
    if test_file is not None and test_fraction is not None:
        raise ConfigError("give --test-file or --test-fraction, not both")
    columns, names, start = csv_columns(path, label, header)
    features = [names[k] for k in columns.features] if names else None
    budget = samples_in_memory(max_in_memory, len(columns.features))
    chunk = min(budget, MAX_CHUNK)
    scan = scan_csv(columns, start, chunk, budget)
    if test_file is None:
        test_scan = scan
        is_test = holdout_split(scan.labels, scan.class_names, test_fraction, seed, path)
    else:
        test_columns, _, test_start = csv_columns(test_file, label, header, features)
        if test_columns.count != columns.count:
            raise DataError(f"{test_file}: {test_columns.count} columns, but {path} has {columns.count}; give a "
                              "test file with the same columns")
        test_scan = scan_csv(test_columns, test_start, chunk, budget - scan.rows, scan.class_names)
        is_test = np.zeros(scan.rows, dtype=bool)
    train = ~is_test
    check_classes(scan.labels[train], scan.class_names, path)
    stats = RunningStats()
    if scan.spill is None:
        stats.update(scan.features[train])
    else:
        for x, _ in scan.spill.select(scan.labels, train, None, len(columns.features)):
            stats.update(x)
    scaler = Standardizer.from_stats(stats)
    x_train, y_train = _split(scan, train, scaler)
    test_mask = is_test if test_file is None else np.ones(test_scan.rows, dtype=bool)
    x_test, y_test = _split(test_scan, test_mask, scaler)
    preprocessing = {
        "type": "csv",
        "job": "csv",
        "label": scan.columns.label if names is None else names[scan.columns.label],
        "header": header,
        "columns": columns.count,
        "features": features,
        "scaling": scaler.to_dict(),
    }
    return TaskData(x_train, y_train, x_test, y_test, scan.class_names, preprocessing,
                    test_name="test" if test_file else "held-out")


def _columns(preprocessing: dict[str, Any], path: Path, labelled: bool | None) -> Any:
    """The columns of a CSV file of rows for a model trained on ``preprocessing``: the features by name when the
    files have headers; the label column when ``labelled`` (None: when the rows have one)."""
    try:
        header, count = bool(preprocessing["header"]), int(preprocessing["columns"])
        label, features = str(preprocessing["label"]), preprocessing["features"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"the model's CSV settings are malformed ({exc!r}); train it again") from None
    if header:
        columns, names, start = csv_columns(path, None, True, features)
        has_label = label in (names or [])
        if has_label:
            columns, _, start = csv_columns(path, label, True, features)
    else:
        columns, _, start = csv_columns(path, None, False)
        has_label = columns.count == count
        if has_label:
            columns, _, start = csv_columns(path, label, False)
        elif columns.count != count - 1:
            raise DataError(f"{path}: rows of {columns.count} values; the model takes {count - 1} features (or "
                              f"{count} values with the label in column {label})")
    if labelled and not has_label:
        raise DataError(f"{path}: no label column {label!r}; evaluating needs the rows' true classes")
    return columns, start


def read_rows(preprocessing: dict[str, Any], class_names: Sequence[str], path: str | os.PathLike,
              labelled: bool | None = None, max_in_memory: int | None = None) -> tuple[Any, np.ndarray | None]:
    """The feature rows of a CSV file, prepared as the model's training prepared them, and their labels (None
    when the rows have no label column; a label the model never saw is a DataError naming the line). Labelled
    rows beyond the memory bound come as chunks (labels None)."""
    columns, start = _columns(preprocessing, Path(path), labelled)
    scaler = Standardizer.from_dict(preprocessing.get("scaling"))
    keep = samples_in_memory(max_in_memory, len(columns.features)) if columns.label is not None else sys.maxsize
    scan = scan_csv(columns, start, min(keep, MAX_CHUNK), keep, list(class_names))
    if columns.label is None:
        return scaler.transform(scan.features), None
    return _split(scan, np.ones(scan.rows, dtype=bool), scaler)


class CsvTask(Task):
    name = "csv"
    source = "a CSV file"
    defaults = {"mlp": mlp_defaults(20, 32, "64,32")}
    options = (
        Option("label", "csv: the class-label column, by header name or number (0-based; -1 the last)",
               {"metavar": "COLUMN"}),
        Option("no_header", "csv: the first row is data, not column names", {"action": "store_true"}),
        Option("test_file", "csv: test rows from this file (same columns)", {"metavar": "FILE"}),
        TEST_FRACTION, MAX_IN_MEMORY,
    )
    inputs = "files"
    preprocessing_types = ("csv",)

    def check(self, args: argparse.Namespace) -> None:
        check_max_in_memory(args)

    def load(self, args: argparse.Namespace, backend: Backend, seed: int) -> TaskData:
        return load_task(args.source, args.label, header=not args.no_header, test_fraction=args.test_fraction,
                         test_file=args.test_file, seed=seed, max_in_memory=args.max_in_memory)

    def test_data(self, model: Model, data: str | None, data_dir: str | None) -> EvalData:
        return EvalData(*read_rows(model.preprocessing, model.class_names, str(data), labelled=True))

    def predict_features(self, model: Model, path: Path) -> tuple[list[str], Any]:
        refuse_images(self, path, "CSV rows")
        x, _ = read_rows(model.preprocessing, model.class_names, path)
        return [f"{path} row {k}" for k in range(1, len(x) + 1)], x


TASK = CsvTask()
