"""Reading your own data as `xpnet train csv` and `xpnet train images` do.

- CSV: rows per second parsed and checked (the scan before training, real MNIST digits written as a CSV file of
  785 columns), and rows per second read back from the spill chunk by chunk and standardised (what each streamed
  epoch reads).
- Image folders: image files per second decoded and resized (Pillow, bilinear) to a few sizes, real fruit photos.
- Per device: seconds per training epoch with the rows resident on the device and streamed from the CSV file in
  chunks (`--max-in-memory`), the CLI's csv-job MLP.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.config import Config
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet.data.chunks import MAX_CHUNK
from xpnet.data.fruits import load_fruits, read_images
from xpnet.data.mnist import write_mnist_csv
from xpnet.data.table import csv_columns, scan_csv
from xpnet.tasks import TASK_DEFAULTS, build_model
from xpnet.tasks import csv as csv_task
from xpnet.tasks.fruits import DATASET_FOLDER

FULL_ROWS, QUICK_ROWS = 20_000, 1_000
FULL_IMAGES, QUICK_IMAGES = None, 48
IMAGE_SIZES = [(32, 32), (64, 64), (100, 100)]
STREAM_CHUNK = {True: 250, False: 5_000}
"""Rows per chunk of the streamed epoch (quick, full)."""


def _median(candidate: Candidate, config: Config) -> float:
    return Stats.of(interleave({"one": candidate}, config.repeats, config.warmup)["one"]).median


def csv_rows(config: Config, path: Path, rows: int) -> dict[str, Any]:
    """Rows/s of the checking scan, and of reading every chunk back from the spill and standardising it."""
    columns, _, start = csv_columns(path, "0", header=False)
    scan_s = _median(Candidate(lambda: scan_csv(columns, start, MAX_CHUNK, rows)), config)
    task = csv_task.load_task(path, "0", header=False, max_in_memory=STREAM_CHUNK[config.quick])
    chunks = task.x_train
    reread_s = _median(Candidate(lambda: [chunks.chunk(k) for k in range(len(chunks.chunk_lengths))]), config)
    return {"rows": rows, "columns": columns.count, "megabytes": round(path.stat().st_size / 1e6, 1),
            "scan_rows_per_s": rows / scan_s, "streamed_rows_per_s": len(chunks) / reread_s}


def image_rows(config: Config) -> list[dict[str, Any]]:
    """Image files/s decoded and resized to each of ``IMAGE_SIZES`` (RGB), and to 64x64 grey."""
    folder = config.data_dir / DATASET_FOLDER
    paths = load_fruits(folder)["train"].paths[: QUICK_IMAGES if config.quick else FULL_IMAGES]
    cases = {f"{h}x{w} rgb": ((h, w), "rgb") for h, w in IMAGE_SIZES} | {"64x64 grey": ((64, 64), "grey")}
    candidates = {name: Candidate(lambda size=size, color=color: read_images(paths, color, size))
                  for name, (size, color) in cases.items()}
    timed = interleave(candidates, config.repeats, config.warmup)
    return [{"size": name, "images": len(paths), "images_per_s": len(paths) / Stats.of(samples).median}
            for name, samples in timed.items()]


def epoch_rows(config: Config, path: Path) -> list[dict[str, Any]]:
    """Seconds per epoch on each device, resident and streamed in chunks, the csv job's default MLP."""
    settings = {**TASK_DEFAULTS["csv"]["mlp"], "model": "mlp"}
    resident = csv_task.load_task(path, "0", header=False)
    streamed = csv_task.load_task(path, "0", header=False, max_in_memory=STREAM_CHUNK[config.quick])
    rows = []
    for device in config.devices:
        backend = config.backend(device)
        candidates = {}
        for name, task in (("resident", resident), ("streamed", streamed)):
            model = build_model("csv", task, settings, backend)
            candidates[name] = Candidate(
                lambda model=model, task=task: model.fit(task.x_train, task.y_train, 1, settings["batch_size"],
                                                         verbose=0),
                backend.synchronize)
        timed = {name: Stats.of(samples).median for name, samples in
                 interleave(candidates, config.repeats, config.warmup).items()}
        rows.append({"device": device, "train_rows": len(resident.y_train), "resident_s": timed["resident"],
                     "streamed_s": timed["streamed"], "streamed_vs_resident": timed["streamed"] / timed["resident"],
                     "chunk_rows": STREAM_CHUNK[config.quick]})
        log(f"data_sources: epoch {device}: {rows[-1]}")
    return rows


def run(config: Config) -> dict[str, Any]:
    """CSV rows/s, image files/s, and resident against streamed epochs per device."""
    rows = QUICK_ROWS if config.quick else FULL_ROWS
    data = config.mnist()
    with tempfile.TemporaryDirectory() as folder:
        pixels = np.rint(data.x_train[:rows] * 255).astype(np.uint8)
        path = write_mnist_csv(Path(folder) / "mnist.csv", pixels, data.y_train[:rows])
        csv_result = csv_rows(config, path, rows)
        log(f"data_sources: csv {csv_result}")
        epochs = epoch_rows(config, path)
    images = image_rows(config)
    log(f"data_sources: images {images}")
    notes = [
        f"csv: {rows} real MNIST training digits as label,784 pixels rows; scan = parse and check every row "
        "(numpy's loadtxt per chunk), kept in memory; streamed = read each chunk back from the spill (.npy, "
        "memory-mapped) and standardise it",
        "images: Pillow decode + convert + bilinear resize of the Fruits-360 photos (100x100 JPEGs), one process",
        f"epoch: the csv job's MLP ({TASK_DEFAULTS['csv']['mlp']['hidden']}), one epoch over the training rows, "
        f"resident on the device or streamed in chunks of {STREAM_CHUNK[config.quick]} rows",
    ]
    return {"csv": [csv_result], "images": images, "epochs": epochs, "notes": notes}
