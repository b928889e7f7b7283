"""Whole jobs as the command line runs them: `xpnet train mnist` to 98% test accuracy, and the Fruits-360
classifier (feature extraction speed and training time)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.config import Config
from benchmarks.timing import Candidate, Stats, interleave, log
from xpnet.backend import Backend
from xpnet.data.fruits import decode_images, load_fruits
from xpnet.features import CACHE_SIZE, hue_histograms
from xpnet.model import Model
from xpnet.schedules import Cosine
from xpnet.tasks import TASK_DEFAULTS, TaskData, build_model, fruits

TARGET_ACCURACY = 0.98
QUICK_MNIST_SAMPLES = 1024
QUICK_IMAGES = 64
QUICK_FRUIT_EPOCHS = 5


def _cli_model(config: Config, device: str, task_name: str, task: TaskData, settings: dict[str, Any]) -> Model:
    """The model `xpnet train` builds for ``settings`` (seed 0)."""
    return build_model(task_name, task, settings, config.backend(device))


def time_to_accuracy(model: Model, task: TaskData, settings: dict[str, Any], target: float,
                     max_seconds: float | None = None) -> dict[str, Any]:
    """Train as `xpnet train` does (test set as validation data, evaluated after every epoch) until the first
    epoch whose test accuracy reaches ``target``; seconds from the start of training to the end of that epoch.
    With ``max_seconds``, training also stops after the first epoch that ends later than that."""
    started = time.perf_counter()
    elapsed: list[float] = []

    def stop_at_target(trained: Model, epoch: int, logs: dict[str, float]) -> None:
        elapsed.append(time.perf_counter() - started)
        out_of_time = max_seconds is not None and elapsed[-1] > max_seconds
        trained.stop_training = logs["val_accuracy"] >= target or out_of_time

    model.optimizer.schedule = Cosine(settings["epochs"])
    history = model.fit(task.x_train, task.y_train, settings["epochs"], settings["batch_size"],
                        validation_data=(task.x_test, task.y_test), seed=0, verbose=0, callbacks=[stop_at_target])
    accuracy = history.history["val_accuracy"]
    reached = next((i for i, a in enumerate(accuracy) if a >= target), None)
    return {
        "epochs_run": len(accuracy),
        "test_accuracy": accuracy,
        "epoch_s_median": float(np.median(history.history["time"])),
        "seconds_to_target": None if reached is None else elapsed[reached],
        "training_seconds_to_target": None if reached is None else float(np.sum(history.history["time"][:reached + 1])),
        "epoch_reaching_target": None if reached is None else reached + 1,
    }


def mnist_rows(config: Config) -> list[dict[str, Any]]:
    settings = dict(TASK_DEFAULTS["mnist"]["mlp"])
    task = config.mnist()
    if config.quick:
        task.x_train, task.y_train = task.x_train[:QUICK_MNIST_SAMPLES], task.y_train[:QUICK_MNIST_SAMPLES]
        settings["epochs"] = 1
    rows = []
    for device in config.devices:
        result = time_to_accuracy(_cli_model(config, device, "mnist", task, settings), task, settings,
                                  TARGET_ACCURACY)
        rows.append({"device": device, "model": f"784-{settings['hidden'].replace(',', '-')}-10", **result})
        log(f"end_to_end: mnist {device}: {result}")
    return rows


def _histogram_candidate(backend: Backend, images: np.ndarray) -> Candidate:
    on_device = backend.asarray(images)
    return Candidate(lambda: hue_histograms(on_device, backend), backend.synchronize)


def fruit_rows(config: Config) -> list[dict[str, Any]]:
    """Decoding and hue-histogram speed (images/s) and the classifier's training time and held-out accuracy."""
    folder = config.data_dir / fruits.DATASET_FOLDER
    paths = load_fruits(folder)["train"].paths[: QUICK_IMAGES if config.quick else None]
    decode = Candidate(lambda: decode_images(paths, size=CACHE_SIZE))
    decode_s = Stats.of(interleave({"decode": decode}, config.repeats, config.warmup)["decode"]).median
    images, _ = decode_images(paths, size=CACHE_SIZE)
    backends = {device: config.backend(device) for device in config.devices}
    candidates = {device: _histogram_candidate(b, images) for device, b in backends.items()}
    histogram_s = {d: Stats.of(s).median for d, s in interleave(candidates, config.repeats, config.warmup).items()}
    task = fruits.load_task(folder, None, next(iter(backends.values())))
    settings = dict(TASK_DEFAULTS["fruits"]["mlp"])
    if config.quick:
        settings["epochs"] = QUICK_FRUIT_EPOCHS
    rows = []
    for device, backend in backends.items():
        model = _cli_model(config, device, "fruits", task, settings)
        started = time.perf_counter()
        model.optimizer.schedule = Cosine(settings["epochs"])
        model.fit(task.x_train, task.y_train, settings["epochs"], settings["batch_size"], seed=0, verbose=0)
        backend.synchronize()
        train_s = time.perf_counter() - started
        rows.append({
            "device": device, "images": len(paths), "decode_images_per_s": len(paths) / decode_s,
            "histogram_images_per_s": len(paths) / histogram_s[device],
            "train_samples": len(task.y_train), "epochs": settings["epochs"], "train_s": train_s,
            "held_out_accuracy": model.evaluate(task.x_test, task.y_test)["accuracy"],
        })
        log(f"end_to_end: fruits {device}: {rows[-1]}")
    return rows


def run(config: Config) -> dict[str, Any]:
    """MNIST time to 98% with `xpnet train mnist`'s defaults, and the fruit classifier, on each device."""
    settings = TASK_DEFAULTS["mnist"]["mlp"]
    notes = [
        f"mnist: `xpnet train mnist` defaults ({settings}), seed 0; time from the start of training to the end of "
        f"the first epoch whose test accuracy >= {TARGET_ACCURACY:.0%}, including the per-epoch test evaluation "
        "the CLI does; training stops there",
        "fruits: decoding (PIL, resized to 100x100) and hue histograms (fused kernel) timed separately; "
        f"training uses `xpnet train fruits` defaults ({TASK_DEFAULTS['fruits']['mlp']}) on the cached features",
    ]
    if config.quick:
        notes.append(f"quick: MNIST on {QUICK_MNIST_SAMPLES} samples for 1 epoch (98% is not expected), "
                     f"{QUICK_IMAGES} fruit images timed, {QUICK_FRUIT_EPOCHS} fruit epochs")
    return {"mnist": mnist_rows(config), "fruits": fruit_rows(config), "notes": notes}
