"""CSV files of numeric feature columns and one class-label column, read a chunk of rows at a time.

The csv module splits the records (quoting, any line ending) and numpy converts the cells; every problem is a
DataError naming the file, the line and the column. ``scan_csv`` checks the whole file once, keeping the parsed
rows in memory when they fit and on disk (a ``Spill``, read back chunk by chunk) when they do not.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from xpnet.data.chunks import Spill
from xpnet.errors import DataError


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such CSV file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a CSV file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _lines(handle: IO[bytes], path: Path, line: int) -> Iterator[tuple[int, str, int]]:
    """(line number, text, byte offset after it) of each non-blank line from the handle's position, which is
    just after line ``line``."""
    while True:
        try:
            raw = handle.readline()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not raw:
            return
        line += 1
        try:
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}, line {line}: byte {exc.start + 1} is not UTF-8 text; save the file as UTF-8 CSV"
            ) from None
        if text.strip():
            yield line, text, handle.tell()


def _cells(path: Path, number: int, text: str) -> list[str]:
    """The cells of one CSV line (quoted cells may hold commas, not line breaks)."""
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}, line {number}: not valid CSV ({exc}); a quoted cell must close on its line") from None


def label_key(text: str) -> str:
    """A class label as the key it is known by: whole numbers written alike ("1", "01", "1.0" are all "1")."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def sort_classes(names: Sequence[str]) -> list[str]:
    """Class names in order: numerically when every one is a whole number, else alphabetically."""
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


@dataclass
class CsvColumns:
    """Where the cells of one CSV file's rows go: ``count`` cells a row, ``features`` (indices, in model order)
    and the ``label`` column (None when the rows have none)."""

    path: Path
    count: int
    features: list[int]
    label: int | None
    header: bool

    def parse(self, lines: Sequence[tuple[int, str]]) -> tuple[np.ndarray, list[str]]:
        """Float64 feature rows and label cells of ``lines`` (line number, text); DataError naming the line and
        column of a ragged row, a non-numeric or non-finite feature cell.

        numpy's C parser reads the cells; a chunk with quoted cells is split by the csv module first, and a chunk
        numpy refuses is split by it to find the bad cell."""
        texts = [text for _, text in lines]
        if any('"' in text for text in texts):
            return self._parse_cells(lines)
        if any(text.count(",") != self.count - 1 for text in texts):
            return self._parse_cells(lines)
        try:
            features = np.loadtxt(texts, delimiter=",", dtype=np.float64, usecols=self.features, ndmin=2,
                                  comments=None)
        except ValueError:
            return self._parse_cells(lines)
        if not np.isfinite(features).all():
            return self._parse_cells(lines)
        labels = [] if self.label is None else [text.split(",")[self.label] for text in texts]
        return features, labels

    def _parse_cells(self, lines: Sequence[tuple[int, str]]) -> tuple[np.ndarray, list[str]]:
        """``parse`` by the csv module, cell by cell: slower, for quoted cells and for naming a bad cell."""
        records = [(number, _cells(self.path, number, text)) for number, text in lines]
        for number, cells in records:
            if len(cells) != self.count:
                raise DataError(f"{self.path}, line {number}: {len(cells)} values, expected {self.count} "
                                "(every row needs the same columns as the first)")
        table = np.array([cells for _, cells in records], dtype=str).reshape(len(records), self.count)
        labels = [] if self.label is None else table[:, self.label].tolist()
        try:
            features = table[:, self.features].astype(np.float64)
        except ValueError:
            features = None
        if features is None or not np.isfinite(features).all():
            raise self._bad_cell(records)
        return features, labels

    def _bad_cell(self, records: Sequence[tuple[int, list[str]]]) -> DataError:
        """The first feature cell of ``records`` that is not a finite number, as a DataError naming it."""
        for number, cells in records:
            for column in self.features:
                cell = cells[column].strip()
                try:
                    finite = math.isfinite(float(cell))
                except ValueError:
                    finite = False
                if not finite:
                    what = "an empty cell" if not cell else f"{cell!r} is not a finite number"
                    return DataError(f"{self.path}, line {number}, column {column + 1}: {what}; feature columns "
                                     "must hold numbers (fill in or remove the row)")
        return DataError(f"{self.path}: a feature cell is not a number")


@dataclass
class CsvScan:
    """What one pass over a CSV file found: every row's label index into ``class_names``, and its float64 feature
    rows: in ``features`` when there were at most ``keep`` rows, else written chunk by chunk to ``spill``."""

    columns: CsvColumns
    rows: int = 0
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    class_names: list[str] = field(default_factory=list)
    features: np.ndarray | None = None
    spill: Spill | None = None


def read_header(path: Path, header: bool) -> tuple[list[str] | None, int, int, int]:
    """The column names (None without a header), the cell count of the first row, and the byte offset and line
    number where the data rows start."""
    with _open(path) as handle:
        first = next(_lines(handle, path, 0), None)
    if first is None:
        raise DataError(f"{path} holds no rows; give a CSV file of feature columns and a label column")
    cells = _cells(path, first[0], first[1])
    if not header:
        return None, len(cells), 0, 0
    return [cell.strip() for cell in cells], len(cells), first[2], first[0]


def label_column(path: Path, names: list[str] | None, count: int, label: str) -> int:
    """The index of the label column: named in the header, or a column number (0-based; negative from the
    end); DataError saying which columns there are when it is neither."""
    if names is not None and label in names:
        return names.index(label)
    try:
        index = int(label)
    except ValueError:
        index = None
    if index is not None and -count <= index < count:
        return index % count
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "") if names else ""
    where = f"the header's columns are {shown}" if names else f"the rows have {count} columns (0..{count - 1})"
    raise DataError(f"{path}: no label column {label!r}: {where}; give --label a column name or number")


def _chunks(columns: CsvColumns, start: tuple[int, int], chunk_rows: int) -> Iterator[list[tuple[int, str, int]]]:
    """The lines of a CSV file from ``start`` (byte offset, line), ``chunk_rows`` at a time."""
    with _open(columns.path) as handle:
        handle.seek(start[0])
        records = _lines(handle, columns.path, start[1])
        while True:
            chunk = []
            for record in records:
                chunk.append(record)
                if len(chunk) == chunk_rows:
                    break
            if not chunk:
                return
            yield chunk


def scan_csv(
    columns: CsvColumns, start: tuple[int, int], chunk_rows: int, keep: int, classes: Sequence[str] | None = None
) -> CsvScan:
    """Check every row of a CSV file from ``start`` (byte offset, line), ``chunk_rows`` at a time.

    Labels (when the rows have a label column) are mapped to ``classes`` (a row with another label is a DataError
    naming it), or to the sorted labels found. The feature rows stay in memory up to ``keep`` of them; past that,
    every chunk goes to a ``Spill`` on disk.
    """
    scan = CsvScan(columns)
    known = {name: index for index, name in enumerate(classes)} if classes is not None else {}
    labels: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for chunk in _chunks(columns, start, chunk_rows):
        features, cells = columns.parse([record[:2] for record in chunk])
        if columns.label is not None:
            keys = [label_key(cell) for cell in cells]
            for (number, _, _), key in zip(chunk, keys, strict=True):
                if not key:
                    raise DataError(f"{columns.path}, line {number}: empty label; give every row its class in the "
                                    "label column")
                if key not in known:
                    if classes is not None:
                        raise DataError(f"{columns.path}, line {number}: label {key!r} is not one of the model's "
                                        f"classes ({', '.join(classes)})")
                    known[key] = len(known)
            labels.append(np.fromiter((known[key] for key in keys), np.int64, len(keys)))
        scan.rows += len(chunk)
        kept.append(features)
        if scan.rows > keep:
            scan.spill = scan.spill or Spill()
            for part in kept:
                scan.spill.append(part)
            kept = []
    if not scan.rows:
        raise DataError(f"{columns.path} holds no data rows, only {'a header' if columns.header else 'blank lines'}")
    scan.class_names = list(classes) if classes is not None else sort_classes(list(known))
    if labels:
        found = np.concatenate(labels)
        if classes is None:  # first-seen order to sorted order
            order = np.empty(len(known), np.int64)
            order[[known[name] for name in scan.class_names]] = np.arange(len(known))
            found = order[found]
        scan.labels = found
    if scan.spill is None:
        scan.features = np.concatenate(kept)
    return scan


def csv_columns(
    path: str | os.PathLike, label: str | None, header: bool, feature_names: Sequence[str] | None = None
) -> tuple[CsvColumns, list[str] | None, tuple[int, int]]:
    """The columns of a CSV file, its header names (None without one) and where its data rows start.

    ``label`` None: the rows may lack the label column. ``feature_names``: the feature columns a model was
    trained on, found by name in the header (in that order).
    """
    path = Path(path)
    names, count, offset, line = read_header(path, header)
    index = None if label is None else label_column(path, names, count, label)
    if feature_names is not None and names is not None:
        missing = [name for name in feature_names if name not in names]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r}, which the model was trained on; the header has "
                            f"{', '.join(names)}")
        features = [names.index(name) for name in feature_names]
    else:
        features = [k for k in range(count) if k != index]
    if not features:
        raise DataError(f"{path}: no feature columns besides the label column")
    return CsvColumns(path, count, features, index, header), names, (offset, line)
