"""The ``xpnet`` command: train, evaluate, predict, info.

Every error a user can cause is an ``XpnetError``: it is printed as one message and the command exits non-zero
(2 for bad input, 130 after Ctrl-C), without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xpnet import __version__, threads
from xpnet.backend import DEVICES, DTYPES
from xpnet.data.fruits import IMAGE_MODES
from xpnet.errors import ConfigError, DataError, XpnetError
from xpnet.kernels import ACTIVATIONS, KERNEL_SETS
from xpnet.optimizers import OPTIMIZERS
from xpnet.tasks import IMAGE_FEATURES, MODEL_KINDS, SOURCE_TASKS, TASK_DEFAULTS, sizes


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default=None,
                        help="where to compute (default: $XPNET_DEVICE or auto: the GPU when one is usable)")
    parser.add_argument("--kernels", choices=KERNEL_SETS, default=None,
                        help="fused Numba kernels or plain array references (default: $XPNET_KERNELS or fused)")
    parser.add_argument("--threads", metavar="N", help="CPU threads for matrix products and kernels: N pins the "
                        "count; auto (default: $XPNET_THREADS or auto) starts with every core (shared among the MPI "
                        "ranks on one machine) and lowers it while other work takes cores, when that is faster")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xpnet", description="Train and use small neural networks on CPU or GPU.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a network on MNIST, Fruits-360, or your CSV, .npz or images")
    train.add_argument("task", choices=sorted(TASK_DEFAULTS), help="what to train")
    train.add_argument("source", nargs="?", help="csv: the CSV file; npz: the .npz file (x, y, optional x_test, "
                       "y_test); images: the folder of class folders (or of Training/ and Test/)")
    _add_device_options(train)
    train.add_argument("--model", choices=MODEL_KINDS,
                       help="mlp (default) or cnn: a convolutional network (images: 32,64 3x3 filters, each "
                            "followed by a 2x2 max-pool, a 128-unit layer, dropout 0.25; 12 epochs; mnist: images "
                            "shifted up to 2 pixels)")
    train.add_argument("--dropout", type=float, help="dropout rate after hidden layers (mlp: 0; cnn: 0.25)")
    train.add_argument("--filters", help="cnn: filters of each 3x3 convolution, comma-separated (default 32,64)")
    train.add_argument("--shift", type=int, metavar="N", help="cnn: move each training image by up to N pixels "
                       "each way at random, zero filled, to augment the data (default: mnist 2, other jobs 0)")
    train.add_argument("--dtype", choices=DTYPES,
                       help="floating-point precision of parameters and computation (default float32)")
    train.add_argument("--epochs", type=int, help="passes over the training set (mnist: 10, fruits: 60)")
    train.add_argument("--batch-size", type=int, help="samples per step; 0 for full batch (mnist: 128, fruits: 32)")
    train.add_argument("--hidden", help="hidden layer sizes, comma-separated (mnist: 512,256; fruits: 150,60)")
    train.add_argument("--activation", choices=[a for a in ACTIVATIONS if a != "softmax"],
                       help="hidden activation (default relu)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam")
    train.add_argument("--lr", type=float, help="learning rate (default 0.001)")
    train.add_argument("--schedule", choices=["cosine", "constant"],
                       help="learning rate over the run: cosine decay from --lr to 0, step by step (default), or "
                            "constant")
    train.add_argument("--seed", type=int,
                       help="seed for initial weights, shuffling and the validation split (default 0)")
    train.add_argument("--validation-split", type=float, metavar="FRACTION",
                       help="share of each class of the training set held out for the per-epoch validation figures "
                            "(mnist: 0.1, fruits: 0.15; 0: none); the test set is evaluated once, at the end")
    train.add_argument("--patience", type=int, metavar="EPOCHS",
                       help="stop early once the validation loss has not improved for EPOCHS epochs (default: "
                            "train every epoch)")
    train.add_argument("--data-dir", help="data folder (mnist: default $XPNET_DATA or ~/.cache/xpnet, downloading "
                       "what is missing; fruits: a Fruits-360 folder, required)")
    train.add_argument("--no-download", action="store_true", help="never download MNIST; fail if it is missing")
    train.add_argument("--classes", help="fruits, images: comma-separated class folders (default fruits: the "
                       "tutorial's four; images: all)")
    train.add_argument("--label", metavar="COLUMN", help="csv: the class-label column, by header name or number "
                       "(0-based; -1 the last)")
    train.add_argument("--no-header", action="store_true", help="csv: the first row is data, not column names")
    train.add_argument("--test-file", metavar="FILE", help="csv: test rows from this file (same columns)")
    train.add_argument("--test-fraction", type=float, help="csv, npz, images: share of each class held out for "
                       "testing when there is no test file, x_test or Test/ folder (default 0.2)")
    train.add_argument("--size", metavar="HxW", help="images: resize every image to HxW pixels (default: all "
                       "images must have one size; hue: 100x100)")
    train.add_argument("--color", choices=IMAGE_MODES, help="images: rgb (default) or grey pixels")
    train.add_argument("--features", choices=IMAGE_FEATURES, help="images: pixels (default; mlp or cnn) or "
                       "hue: the fruit tutorial's hue histograms")
    train.add_argument("--max-in-memory", type=int, metavar="N", help="csv, images: most rows or images held at "
                       "once; more are read a chunk at a time (default: what fits in 1 GiB as float32 features)")
    train.add_argument("--save", metavar="PATH", help="save the trained model here (.npz)")
    train.add_argument("--plot", metavar="PATH", help="write training curves as PNG, and charts beside them (fruits: "
                       "mean hues; fruits, csv, npz, images: a confusion matrix)")
    train.add_argument("--checkpoint-dir", metavar="DIR", help="write a checkpoint after every epoch and on Ctrl-C")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary; just the result line")
    train.add_argument("--distributed", action="store_true",
                       help="train as one rank of an MPI job (mpiexec -n N xpnet train ..., or srun); detected under "
                            "mpiexec and srun, this flag makes MPI required")

    evaluate = commands.add_parser("evaluate", help="a saved model's loss and accuracy on its task's test data")
    evaluate.add_argument("model", help="a model saved with --save")
    evaluate.add_argument("data", nargs="?", help="csv, npz and images models: the labelled CSV file, .npz file or "
                          "image folder to test on (an image folder it was trained on: its held-out images)")
    evaluate.add_argument("--data-dir", help="data folder, as for train")
    _add_device_options(evaluate)

    predict = commands.add_parser("predict", help="classify image files, CSV rows or .npz samples with a saved model")
    predict.add_argument("model", help="a model saved with --save")
    predict.add_argument("images", nargs="+", help="image files (digits of any size, fruit photos, images for an "
                         "images model), or CSV / .npz files of raw samples for a csv / npz model")
    _add_device_options(predict)

    export = commands.add_parser("export", help="write a saved model as an ONNX file (needs the onnx extra)")
    export.add_argument("model", help="a model saved with --save")
    export.add_argument("output", help="the ONNX file to write (.onnx)")

    info = commands.add_parser("info", help="versions, devices and kernel mode; with a model file, its layers")
    info.add_argument("model", nargs="?", help="a saved model or checkpoint: print its layers, shapes and parameters")

    bench = commands.add_parser("bench", help="run the benchmark suite (xpnet bench --help for its options)",
                                add_help=False, prefix_chars="+")  # every option goes on to the suite's parser
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


JOB_OPTIONS = {
    "label": ("csv",), "no_header": ("csv",), "test_file": ("csv",), "test_fraction": ("csv", "npz", "images"),
    "size": ("images",), "color": ("images",), "features": ("images",), "max_in_memory": ("csv", "images"),
    "classes": ("fruits", "images"), "data_dir": ("mnist", "fruits"), "no_download": ("mnist",),
}
"""The jobs each data option of `xpnet train` applies to."""


def _check_job_options(args: argparse.Namespace) -> None:
    """ConfigError for a data option given to a job it does not apply to, or a missing or extra data source."""
    for option, jobs in JOB_OPTIONS.items():
        if getattr(args, option) not in (None, False) and args.task not in jobs:
            raise ConfigError(f"--{option.replace('_', '-')} applies to xpnet train {' and '.join(jobs)}, not "
                              f"{args.task}")
    if args.task in SOURCE_TASKS and args.source is None:
        raise ConfigError(f"xpnet train {args.task} needs {SOURCE_TASKS[args.task]}: xpnet train {args.task} PATH")
    if args.task not in SOURCE_TASKS and args.source is not None:
        raise ConfigError(f"xpnet train {args.task} takes no {args.source!r}; give its data folder as --data-dir")
    if args.features == "hue" and args.color == "grey":
        raise ConfigError("--features hue reads colour: leave out --color grey")
    if args.max_in_memory is not None and args.max_in_memory < 1:
        raise ConfigError(f"--max-in-memory {args.max_in_memory}: must be at least 1")


RUN_DEFAULTS = {"model": "mlp", "seed": 0, "schedule": "cosine", "patience": None}
"""The settings of every task whose flags have no per-task default."""


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], set[str]]:
    """The run's settings (the flags given, the task's defaults for the rest) and the names of those given."""
    _check_job_options(args)
    model = args.model or RUN_DEFAULTS["model"]
    defaults = TASK_DEFAULTS[args.task].get(model)
    if defaults is None:
        raise ConfigError(f"xpnet train {args.task} has no --model {model} (it learns from hue histograms, not "
                          f"images); use --model {' or '.join(TASK_DEFAULTS[args.task])}")
    for flag in ("filters", "shift"):
        if getattr(args, flag) is not None and flag not in defaults:
            raise ConfigError(f"--{flag} applies to --model cnn only")
    defaults = {**defaults, **RUN_DEFAULTS}
    given = {key for key in defaults if getattr(args, key) is not None}
    settings = {key: getattr(args, key) if key in given else value for key, value in defaults.items()}
    sizes(settings["hidden"], "--hidden")
    if "filters" in settings:
        sizes(settings["filters"], "--filters")
    if not 0 <= settings["dropout"] < 1:
        raise ConfigError(f"--dropout {settings['dropout']}: must be in [0, 1)")
    if settings.get("shift", 0) < 0:
        raise ConfigError(f"--shift {settings['shift']}: must be 0 or more pixels")
    if settings["epochs"] < 0:
        raise ConfigError(f"--epochs {settings['epochs']}: must be 0 or more")
    if settings["batch_size"] < 0:
        raise ConfigError(f"--batch-size {settings['batch_size']}: must be positive (or 0 for full batch)")
    if not 0 <= settings["validation_split"] < 1:
        raise ConfigError(f"--validation-split {settings['validation_split']}: must be in [0, 1)")
    if settings["patience"] is not None:
        if settings["patience"] < 0:
            raise ConfigError(f"--patience {settings['patience']}: must be 0 or more epochs")
        if not settings["validation_split"]:
            raise ConfigError("--patience watches the validation loss: give a --validation-split above 0")
    settings["batch_size"] = settings["batch_size"] or None
    settings["task"] = args.task
    return settings, given


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse, before any training, an output path that cannot be written: a file where a folder is needed (or the
    other way round), or a folder without write permission."""
    outputs = (("--save", args.save, False), ("--plot", args.plot, False),
               ("--checkpoint-dir", args.checkpoint_dir, True))
    for flag, name, is_folder in outputs:
        if name is None:
            continue
        path = Path(name).expanduser()
        if is_folder and path.exists() and not path.is_dir():
            raise ConfigError(f"{flag} {name}: this is a file, not a folder; give a folder for the checkpoints")
        if not is_folder and path.is_dir():
            raise ConfigError(f"{flag} {name}: this is a folder; give a file name")
        folder = path if is_folder else path.parent
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"{flag} {name}: {existing} is a file, not a folder; check the path")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {name}: cannot write in {existing}; check the path and its permissions")


def _load_task(args: argparse.Namespace, backend: Any, seed: int) -> Any:
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if args.task == "mnist":
        from xpnet.tasks import mnist

        return mnist.load_task(args.data_dir, download=not args.no_download)
    if args.task == "csv":
        from xpnet.tasks import csv

        return csv.load_task(args.source, args.label, header=not args.no_header, test_fraction=args.test_fraction,
                             test_file=args.test_file, seed=seed, max_in_memory=args.max_in_memory)
    if args.task == "npz":
        from xpnet.tasks import npz

        return npz.load_task(args.source, test_fraction=args.test_fraction, seed=seed)
    if args.task == "images":
        from xpnet.tasks import images

        return images.load_task(args.source, backend, size=images.parse_size(args.size), color=args.color or "rgb",
                                features=args.features or "pixels", classes=classes,
                                test_fraction=args.test_fraction, seed=seed, max_in_memory=args.max_in_memory)
    from xpnet.tasks import fruits

    if not args.data_dir:
        raise ConfigError("xpnet train fruits needs --data-dir: a Fruits-360 folder (with Training/, maybe Test/)")
    return fruits.load_task(args.data_dir, classes, backend, seed=seed)


def _accuracy(split: str, metrics: dict[str, float]) -> str:
    return f"{split} accuracy {100 * metrics['accuracy']:.2f}% (loss {metrics['loss']:.4f})"


def command_train(args: argparse.Namespace) -> int:
    from xpnet.distributed import connect

    communicator = connect(args.distributed)
    if communicator is None:
        return _train(args, None)
    with communicator.fail_together():
        return _train(args, communicator)


def _train(args: argparse.Namespace, communicator: Any) -> int:
    from xpnet.backend import get_backend
    from xpnet.serialization import model_path, save_model
    from xpnet.tasks import build_model
    from xpnet.training import run_training

    settings, given = _settings(args)
    _check_output_paths(args)
    quiet = args.quiet or (communicator is not None and communicator.rank != 0)  # rank 0 alone reports
    log = (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr))
    if communicator is not None and args.device != "cpu":
        from xpnet.backend_cupy import select_device

        select_device(communicator.local_rank)
    backend = get_backend(args.device, args.dtype or "float32", settings["seed"], args.kernels)
    threads.configure(args.threads, communicator)  # one owner of the CPU threads (xpnet.threads)
    task = _load_task(args, backend, settings["seed"])

    def build() -> Any:
        return build_model(args.task, task, settings, backend)

    result = run_training(task, build, settings, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                          given=given, backend=backend, verbose=0 if quiet else 1, log=log,
                          communicator=communicator)
    if communicator is not None and communicator.rank != 0:
        return 0
    model = result.model
    if args.save:
        replaced = model_path(args.save).is_file()
        path = save_model(model, args.save)
        log(f"saved the model to {path}" + (" (replaced the existing file)" if replaced else ""))
    if args.plot:
        from xpnet.plotting import plot_history
        from xpnet.tasks import plot_charts

        title = f"xpnet {args.task}: {model!r}"
        charts = [plot_history(result.history.history, args.plot, title), *plot_charts(task, model, args.plot)]
        log(f"wrote {', '.join(map(str, charts))}")
    backend = model.backend
    epochs = len(result.history.epoch)
    print(f"{_accuracy(task.test_name, result.test)} after {epochs} epoch{'' if epochs == 1 else 's'} in "
          f"{result.seconds:.1f} s on {backend.name} ({backend.device}; {model.dtype.name}, "
          f"{backend.kernel_mode} kernels" + (f", {threads.describe()})" if backend.name == "cpu" else ")"))
    return 0


def _load(args: argparse.Namespace) -> Any:
    from xpnet.serialization import load_model

    threads.configure(args.threads)  # one owner of the CPU threads (xpnet.threads)
    return load_model(args.model, device=args.device, kernel_mode=args.kernels)


def _own_data(model: Any, path: str | None, labelled: bool) -> tuple[Any, Any]:
    """Samples (and labels: None when the file has none, or when the samples are chunks) of a CSV or .npz file for
    a model from `xpnet train csv` or `npz`, prepared as in training."""
    if model.preprocessing.get("type") == "csv":
        from xpnet.tasks import csv

        return csv.read_rows(model.preprocessing, model.class_names, path, labelled)
    from xpnet.tasks import npz

    return npz.read_samples(model.preprocessing, model.class_names, path, labelled)


def command_evaluate(args: argparse.Namespace) -> int:
    model = _load(args)
    kind = model.preprocessing.get("type")
    job = model.preprocessing.get("job", kind)
    if job in SOURCE_TASKS and args.data is None:
        raise ConfigError(f"{args.model} was trained by `xpnet train {job}`: give {SOURCE_TASKS[job]} of labelled "
                          f"samples to test it on, after the model")
    if args.data is not None and job not in SOURCE_TASKS:
        raise ConfigError(f"a {kind} model is evaluated on its own test data; leave out {args.data!r}")
    if job in ("csv", "npz"):
        x, y = _own_data(model, args.data, labelled=True)
        metrics = model.evaluate(x, y)
        print(f"{_accuracy('test', metrics)} on {len(x) if y is None else len(y)} samples")
        return 0
    if job == "images":
        from xpnet.tasks import images

        task = images.evaluation_data(args.data, model.preprocessing, model.class_names, model.backend)
    elif kind == "mnist":
        from xpnet.tasks import mnist

        task = mnist.load_task(args.data_dir, download=False)
    elif kind == "hue_histogram":
        from xpnet.tasks import fruits

        if not args.data_dir:
            raise ConfigError("evaluating a fruit model needs --data-dir, the Fruits-360 folder it was trained on")
        task = fruits.evaluation_task(args.data_dir, model)
    else:
        raise ConfigError(f"{args.model}: the model has no known task (preprocessing {kind!r}) to evaluate it on")
    metrics = model.evaluate(task.x_test, task.y_test)
    print(f"{_accuracy(task.test_name, metrics)} on {len(task.x_test)} samples")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    from xpnet.tasks import image_features

    model = _load(args)
    paths = [Path(p) for p in args.images]
    own_rows = model.preprocessing.get("type") in ("csv", "arrays")
    names, features, problems = [], [], []
    for path in paths:  # one file at a time, so that a bad file is named and the good ones still get an answer
        try:
            if own_rows:
                x, _ = _own_data(model, str(path), labelled=False)
                names += [f"{path} row {k}" for k in range(1, len(x) + 1)]
            else:
                x = image_features(model.preprocessing, [path], model.backend)
                names.append(str(path))
            features.append(x)
        except DataError as exc:
            problems.append(str(exc))
    if features:
        proba = model.predict_proba(np.concatenate(features))
        classes = model.class_names or [str(k) for k in range(model.output_dim)]
        for name, row in zip(names, proba, strict=True):
            best = int(np.argmax(row))
            print(f"{name}: {classes[best]} ({100 * float(row[best]):.1f}%)")
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        files = "files" if own_rows else "image files"
        raise DataError(f"{len(problems)} of the {len(paths)} {files} could not be read: {'; '.join(problems)}")
    return 0


def command_export(args: argparse.Namespace) -> int:
    from xpnet.export import OPSET, to_onnx
    from xpnet.serialization import load_model

    model = load_model(args.model, device="cpu")
    path = to_onnx(model, args.output)
    print(f"wrote {path} (ONNX opset {OPSET}): float32 input (batch, {', '.join(map(str, model.input_shape))}) -> "
          f"output (batch, {model.output_dim}), as predict_proba")
    return 0


def command_info(args: argparse.Namespace) -> int:
    import numba

    from xpnet.backend import get_backend, resolve_kernel_mode
    from xpnet.backend_cupy import gpu_problem

    if args.model:
        from xpnet.serialization import load_model

        model = load_model(args.model, device="cpu")
        model.summary()
        names = model.class_names
        print(f"classes: {', '.join(names) if names else 'unnamed'}; trained {model.step} steps; "
              f"preprocessing: {model.preprocessing.get('type', 'none')}")
        return 0
    print(f"xpnet {__version__}; Python {sys.version.split()[0]}; NumPy {np.__version__}; Numba {numba.__version__}")
    print(f"kernels: {resolve_kernel_mode(None)} (set $XPNET_KERNELS to fused or reference)")
    cpu = get_backend("cpu")
    print(f"cpu: {cpu.device}")
    print(f"threads: {threads.describe()}; {threads.pools().describe()} (--threads N or $XPNET_THREADS=N pins)")
    problem = gpu_problem()
    if problem is None:
        gpu = get_backend("gpu")
        print("gpu: " + "; ".join(f"{k} {v}" for k, v in gpu.describe().items()))
    else:
        print(f"gpu: not usable ({problem})")
    print(f"default device: {get_backend(None).name}")
    return 0


def command_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise ConfigError(f"xpnet bench runs the benchmarks/ folder of a source checkout; {root} has none")
    sys.path.insert(0, str(root))
    from benchmarks.__main__ import main as bench_main

    return bench_main(args.bench_args, prog="xpnet bench")


COMMANDS = {"train": command_train, "evaluate": command_evaluate, "predict": command_predict, "info": command_info,
            "bench": command_bench, "export": command_export}


def _error(message: str) -> None:
    """One ``xpnet: error:`` line, written whole in one call: the ranks of an MPI job share one stderr, and
    ``print`` writes the text and its newline separately, so two ranks' lines could run together."""
    sys.stderr.write(f"xpnet: error: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except XpnetError as exc:
        _error(f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
        return exc.exit_code
    except OSError as exc:  # a file the user named cannot be written or read (permissions, full disk...)
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}; check the path and its permissions")
        return 2
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
