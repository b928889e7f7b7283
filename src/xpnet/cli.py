"""The ``xpnet`` command: train, evaluate, predict, info.

Every error a user can cause is an ``XpnetError``: it is printed as one message and the command exits non-zero
(2 for bad input, 130 after Ctrl-C), without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from xpnet import __version__, threads
from xpnet.backend import DEVICES, DTYPES
from xpnet.errors import ConfigError, DataError, DeviceError, XpnetError
from xpnet.graph_step import GRAPH_SETTINGS
from xpnet.kernels import ACTIVATIONS, KERNEL_SETS
from xpnet.optimizers import OPTIMIZERS
from xpnet.recipes import NO_RECIPE, RECIPES, get_recipe
from xpnet.schedules import SCHEDULE_FLAGS
from xpnet.tasks import MODEL_KINDS, TASKS, Task, sizes, task_of


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
    train.add_argument("task", choices=sorted(TASKS), help="what to train")
    train.add_argument("source", nargs="?", help="the data, for " + "; ".join(
        f"{name}: {task.source}" for name, task in TASKS.items() if task.source))
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
    train.add_argument("--graph", choices=GRAPH_SETTINGS, default="auto",
                       help="record the training step once and replay it (a CUDA graph on the GPU, its kernel calls "
                            "on the CPU), checked against an eager step first: auto (default) with fused kernels "
                            "where the model allows, on, off")
    train.add_argument("--epochs", type=int, help="passes over the training set (mnist: 10, fruits: 60)")
    train.add_argument("--batch-size", type=int, help="samples per step; 0 for full batch (mnist: 128, fruits: 32)")
    train.add_argument("--hidden", help="hidden layer sizes, comma-separated (mnist: 512,256; fruits: 150,60)")
    train.add_argument("--activation", choices=[a for a in ACTIVATIONS if a != "softmax"],
                       help="hidden activation (default relu)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam")
    train.add_argument("--lr", type=float, help="learning rate (default 0.001)")
    train.add_argument("--schedule", choices=SCHEDULE_FLAGS,
                       help="learning rate over the run, step by step: cosine decay from --lr to 0 (default), "
                            "onecycle (PyTorch's OneCycleLR, --lr the peak), step (x0.1 every third of the run), "
                            "exponential (to 1%% of --lr at the end) or constant")
    train.add_argument("--warmup", type=int, metavar="EPOCHS",
                       help="raise the rate linearly from 0 over the first EPOCHS, then follow --schedule over the "
                            "rest")
    train.add_argument("--weight-decay", type=float, metavar="W",
                       help="weight decay of the Dense and Conv2D kernels (not biases or BatchNorm): L2 for sgd, "
                            "momentum, nesterov, adam and rmsprop, decoupled for adamw (default 0; adamw 0.01)")
    train.add_argument("--label-smoothing", type=float, metavar="S",
                       help="train against (1 - S) * one-hot + S / classes (default 0)")
    train.add_argument("--clip-norm", type=float, metavar="C",
                       help="scale each step's gradient to a global norm of at most C (default: no clipping)")
    train.add_argument("--max-norm", type=float, metavar="C",
                       help="after each step, rescale every unit's incoming Dense/Conv2D weights to norm at most C")
    train.add_argument("--recipe", choices=[*sorted(RECIPES), NO_RECIPE],
                       help="mnist: a preset model and training settings (explicit flags override them; --model cnn "
                            f"trains the cnn recipe unless --recipe {NO_RECIPE}): "
                            + "; ".join(f"{name}: {recipe.summary}" for name, recipe in sorted(RECIPES.items())))
    train.add_argument("--seed", type=int,
                       help="seed for initial weights, shuffling and the validation split (default 0)")
    train.add_argument("--validation-split", type=float, metavar="FRACTION",
                       help="share of each class of the training set held out for the per-epoch validation figures "
                            "(mnist: 0.1, fruits: 0.15; 0: none); the test set is evaluated once, at the end")
    train.add_argument("--patience", type=int, metavar="EPOCHS",
                       help="stop early once the validation loss has not improved for EPOCHS epochs (default: "
                            "train every epoch)")
    added: set[str] = set()
    for task in TASKS.values():  # each job's data options, once each
        for option in task.options:
            if option.dest not in added:
                option.add_to(train)
                added.add(option.dest)
    train.add_argument("--save", metavar="PATH", help="save the trained model here (.npz)")
    train.add_argument("--plot", metavar="PATH", help="write training curves as PNG (or the format the suffix names: "
                       ".jpg, .pdf, .svg), and charts beside them (fruits: mean hues; every job: a confusion matrix)")
    train.add_argument("--log-csv", metavar="FILE", help="write each epoch's figures (loss, accuracy, validation "
                       "figures, seconds) to this CSV file as the run goes; with --resume, continue it")
    train.add_argument("--checkpoint-dir", metavar="DIR", help="write a checkpoint after every epoch and on Ctrl-C")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary; just the result line")
    train.add_argument("--distributed", action="store_true",
                       help="train as one rank of an MPI job (mpiexec -n N xpnet train ..., or srun); detected under "
                            "mpiexec and srun, this flag makes MPI required")

    evaluate = commands.add_parser("evaluate", help="a saved model's loss and accuracy on its task's test data")
    evaluate.add_argument("model", help="a model saved with --save")
    evaluate.add_argument("data", nargs="?", help="csv, npz and images models: the labelled CSV file, .npz file or "
                          "image folder to test on (the image folder it was trained on: its held-out images; any "
                          "other: all its images)")
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
    info.add_argument("model", nargs="?", help="a saved model, a checkpoint, or a --checkpoint-dir folder (its newest "
                      "checkpoint): print its layers, shapes and parameters")

    bench = commands.add_parser("bench", help="run the benchmark suite (xpnet bench --help for its options)",
                                add_help=False, prefix_chars="+")  # every option goes on to the suite's parser
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def _check_job_options(args: argparse.Namespace) -> Task:
    """The job ``args`` name; ConfigError for a data option given to a job it does not apply to, a missing or extra
    data source, or options of the job that do not go together."""
    task = TASKS[args.task]
    for other in TASKS.values():
        for option in other.options:
            if option not in task.options and getattr(args, option.dest) not in (None, False):
                jobs = [name for name, job in TASKS.items() if option in job.options]
                raise ConfigError(f"{option.flag} applies to xpnet train {' and '.join(jobs)}, not {args.task}")
    if task.source is not None and args.source is None:
        raise ConfigError(f"xpnet train {args.task} needs {task.source}: xpnet train {args.task} PATH")
    if task.source is None and args.source is not None:
        raise ConfigError(f"xpnet train {args.task} takes no {args.source!r}; give its data folder as --data-dir")
    task.check(args)
    return task


RUN_DEFAULTS = {"model": "mlp", "seed": 0, "schedule": "cosine", "patience": None, "recipe": None,
                "weight_decay": None, "label_smoothing": 0.0, "clip_norm": None, "max_norm": None, "warmup": 0}
"""The settings of every task whose flags have no per-task default (a task's defaults may still set them)."""


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], set[str]]:
    """The run's settings (the flags given, the task's defaults for the rest) and the names of those given."""
    task = _check_job_options(args)
    name = args.recipe if args.recipe is not None else task.default_recipes.get(args.model or RUN_DEFAULTS["model"])
    recipe = None if name in (None, NO_RECIPE) else _recipe(args, name)
    model = recipe.model if recipe else args.model or RUN_DEFAULTS["model"]
    defaults = task.defaults.get(model)
    if defaults is None:
        raise ConfigError(f"xpnet train {args.task} has no --model {model} (it learns from hue histograms, not "
                          f"images); use --model {' or '.join(task.defaults)}")
    defaults = {**RUN_DEFAULTS, "model": model, **defaults, **(recipe.settings if recipe else {})}
    for flag in ("filters", "shift"):
        if getattr(args, flag) is not None and flag not in defaults:
            raise ConfigError(f"--{flag} applies to --model cnn only")
    given = {key for key in defaults if getattr(args, key) is not None}
    settings = {key: getattr(args, key) if key in given else value for key, value in defaults.items()}
    settings["recipe"] = name if recipe else None  # the model kind's default recipe, or None for --recipe none
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
    _check_training_options(settings)
    settings["batch_size"] = settings["batch_size"] or None
    settings["task"] = args.task
    return settings, given


def _recipe(args: argparse.Namespace, name: str) -> Any:
    """The recipe ``name`` (``--recipe``'s or the model kind's default); ConfigError for a job other than mnist or
    a --model that contradicts it."""
    recipe = get_recipe(name)
    if args.task != "mnist":
        raise ConfigError(f"--recipe applies to xpnet train mnist, not {args.task}")
    if args.model is not None and args.model != recipe.model:
        raise ConfigError(f"--recipe {name} trains a --model {recipe.model}; leave --model out")
    return recipe


def _check_training_options(settings: dict[str, Any]) -> None:
    """ConfigError naming the first regularisation or schedule flag out of range."""
    checks = (("weight_decay", lambda v: v >= 0, "must be 0 or more"),
              ("label_smoothing", lambda v: 0 <= v < 1, "must be in [0, 1)"),
              ("clip_norm", lambda v: v > 0, "must be positive"), ("max_norm", lambda v: v > 0, "must be positive"),
              ("warmup", lambda v: 0 <= v <= settings["epochs"], f"must be 0 to --epochs ({settings['epochs']})"))
    for key, valid, rule in checks:
        value = settings[key]
        if value is not None and not (math.isfinite(value) and valid(value)):
            raise ConfigError(f"--{key.replace('_', '-')} {value}: {rule}")


def _check_output_path(flag: str, name: str, is_folder: bool) -> None:
    """Refuse, before any work, an output path that cannot be written: a file where a folder is needed (or the
    other way round), or a folder without write permission. ``flag`` names the argument in the message."""
    label = f"{flag} {name}".strip()
    path = Path(name).expanduser()
    if is_folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{label}: this is a file, not a folder; give a folder for the checkpoints")
    if not is_folder and path.is_dir():
        raise ConfigError(f"{label}: this is a folder; give a file name")
    folder = path if is_folder else path.parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{label}: {existing} is a file, not a folder; check the path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{label}: cannot write in {existing}; check the path and its permissions")


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse, before any training, the outputs of `xpnet train` that cannot be written, and a --plot format that
    cannot be (or without matplotlib)."""
    outputs = (("--save", args.save, False), ("--plot", args.plot, False), ("--log-csv", args.log_csv, False),
               ("--checkpoint-dir", args.checkpoint_dir, True))
    for flag, name, is_folder in outputs:
        if name is not None:
            _check_output_path(flag, name, is_folder)
    if args.plot is not None:
        from xpnet.plotting import check_plot_path

        check_plot_path(args.plot)


def _accuracy(split: str, metrics: dict[str, float]) -> str:
    """``test accuracy 98.12% (loss 0.0634)``, with any other metric the model reports (``Model.compile``) after
    the loss."""
    others = "".join(f", {name} {value:.4g}" for name, value in metrics.items() if name not in ("loss", "accuracy"))
    accuracy = f" accuracy {100 * metrics['accuracy']:.2f}%" if "accuracy" in metrics else ""
    return f"{split}{accuracy} (loss {metrics['loss']:.4f}{others})"


def command_train(args: argparse.Namespace) -> int:
    from xpnet.distributed import connect

    communicator = connect(args.distributed)
    if communicator is None:
        return _train(args, None)
    with communicator.fail_together():
        return _train(args, communicator)


def _train(args: argparse.Namespace, communicator: Any) -> int:
    from xpnet.backend import get_backend, select_device
    from xpnet.run import run_training
    from xpnet.serialization import model_path, save_model
    from xpnet.tasks import build_model
    from xpnet.tasks.common import check_training_left

    settings, given = _settings(args)
    _check_output_paths(args)
    quiet = args.quiet or (communicator is not None and communicator.rank != 0)  # rank 0 alone reports
    log = (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr))
    if communicator is not None:
        select_device(args.device, communicator.local_rank)
    backend = get_backend(args.device, args.dtype or "float32", settings["seed"], args.kernels)
    threads.configure(args.threads, communicator)  # one owner of the CPU threads (xpnet.threads)
    job = TASKS[args.task]
    task = job.load(args, backend, settings["seed"])
    check_training_left(task, settings["validation_split"], settings["seed"], args.source or args.task)

    def build() -> Any:
        return build_model(args.task, task, settings, backend)

    result = run_training(task, build, settings, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                          log_csv=args.log_csv,
                          given=given, backend=backend, verbose=0 if quiet else 1, log=log,
                          communicator=communicator, graph=args.graph)
    if communicator is not None and communicator.rank != 0:
        return 0
    model = result.model
    if args.save:
        replaced = model_path(args.save).is_file()
        path = save_model(model, args.save)
        log(f"saved the model to {path}" + (" (replaced the existing file)" if replaced else ""))
    if args.plot:
        from xpnet.plotting import plot_history
        from xpnet.tasks.base import plot_charts

        title = f"xpnet {args.task}: {model!r}"
        charts = [plot_history(result.history.history, args.plot, title), *plot_charts(job, task, model, args.plot)]
        log(f"wrote {', '.join(map(str, charts))}")
    backend = model.backend
    epochs = len(result.history.epoch)
    print(f"{_accuracy(task.test_name, result.test)} after {epochs} epoch{'' if epochs == 1 else 's'} in "
          f"{result.seconds:.1f} s on {backend.name} ({backend.description}; {model.dtype.name}, "
          f"{backend.kernel_mode} kernels" + (f", {threads.describe()}" if backend.host_threads else "")
          + (f", {backend.graph_runtime.name} {getattr(model.trainer, 'graph_status', 'off')})" if backend.graph_runtime
             else ")"))
    return 0


def _load(args: argparse.Namespace) -> Any:
    from xpnet.serialization import load_model

    threads.configure(args.threads)  # one owner of the CPU threads (xpnet.threads)
    return load_model(args.model, device=args.device, kernel_mode=args.kernels)


def command_evaluate(args: argparse.Namespace) -> int:
    model = _load(args)
    task = task_of(model.preprocessing, args.model)
    if task.source is not None and args.data is None:
        raise ConfigError(f"{args.model} was trained by `xpnet train {task.name}`: give {task.source} of labelled "
                          f"samples to test it on, after the model")
    if args.data is not None and task.source is None:
        raise ConfigError(f"a {task.name} model is evaluated on its own test data; leave out {args.data!r}")
    data = task.test_data(model, args.data, args.data_dir)
    metrics = model.evaluate(data.x, data.y)
    print(f"{_accuracy(data.name, metrics)} on {data.count} samples")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    model = _load(args)
    task = task_of(model.preprocessing, args.model)
    paths = [Path(p) for p in args.images]
    names, features, problems = [], [], []
    for path in paths:  # one file at a time, so that a bad file is named and the good ones still get an answer
        try:
            found, x = task.predict_features(model, path)
            names += found
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
        raise DataError(f"{len(problems)} of the {len(paths)} {task.inputs} could not be read: {'; '.join(problems)}")
    return 0


def command_export(args: argparse.Namespace) -> int:
    _check_output_path("", args.output, False)
    from xpnet.export import OPSET, to_onnx
    from xpnet.serialization import load_model

    model = load_model(args.model, device="cpu")
    path = to_onnx(model, args.output)
    print(f"wrote {path} (ONNX opset {OPSET}): float32 input (batch, {', '.join(map(str, model.input_shape))}) -> "
          f"output (batch, {model.output_dim}), as predict_proba")
    return 0


def command_info(args: argparse.Namespace) -> int:
    import numba

    from xpnet.backend import (
        BACKENDS,
        DEVICE_ENV,
        get_backend,
        open_backend,
        resolve_device,
        resolve_dtype,
        resolve_kernel_mode,
    )

    if args.model:
        from xpnet.serialization import archive_file, load_model

        path = archive_file(args.model)
        if path != Path(args.model):
            print(f"newest checkpoint: {path}")
        model = load_model(path, device="cpu")
        model.summary()
        names = model.class_names
        print(f"classes: {', '.join(names) if names else 'unnamed'}; trained {model.step} steps; "
              f"preprocessing: {model.preprocessing.get('type', 'none')}")
        return 0
    print(f"xpnet {__version__}; Python {sys.version.split()[0]}; NumPy {np.__version__}; Numba {numba.__version__}")
    print(f"kernels: {resolve_kernel_mode(None)} (set $XPNET_KERNELS to fused or reference)")
    for name, cls in sorted(BACKENDS.items()):
        for what, found in cls.software().items():
            print(f"{what}: {found}")
        if cls.host_threads:
            print(f"threads: {threads.describe()}; {threads.pools().describe()} (--threads N or $XPNET_THREADS=N pins)")
        opened = open_backend(cls, resolve_dtype(None), resolve_kernel_mode(None), None)
        if isinstance(opened, str):
            print(f"{name}: not usable ({opened})")
        else:
            print(f"{name}: " + "; ".join(f"{k} {v}" for k, v in opened.describe().items() if k != "backend"))
    try:
        print(f"default device: {get_backend(None).name}")
    except DeviceError as exc:  # $XPNET_DEVICE names a device that is not usable: part of the report, not a failure
        print(f"default device: {resolve_device(None)} (from ${DEVICE_ENV}), not usable: {exc}")
    return 0


def _checkout_package(root: Path, name: str) -> ModuleType:
    """The package ``name`` of the source checkout at ``root``, imported from its folder by location: putting the
    checkout on ``sys.path`` instead would let its other folders shadow installed modules for the whole process."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, root / name / "__init__.py",
                                                      submodule_search_locations=[str(root / name)])
        if spec is None or spec.loader is None:
            raise ConfigError(f"{root / name} cannot be imported; run python -m {name} from the checkout")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def command_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise ConfigError(f"xpnet bench runs the benchmarks/ folder of a source checkout; {root} has none")
    _checkout_package(root, "benchmarks")
    bench_main = importlib.import_module("benchmarks.__main__").main
    return bench_main(args.bench_args, prog="xpnet bench")


COMMANDS = {"train": command_train, "evaluate": command_evaluate, "predict": command_predict, "info": command_info,
            "bench": command_bench, "export": command_export}


def _error(message: str) -> None:
    """One ``xpnet: error:`` line, written whole in one call: the ranks of an MPI job share one stderr, and
    ``print`` writes the text and its newline separately, so two ranks' lines could run together."""
    sys.stderr.write(f"xpnet: error: {message}\n")
    sys.stderr.flush()


def _notice(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
            line: str | None = None) -> None:
    """A warning (a skipped file, an unwritable cache) as one ``note:`` line, without the source line."""
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status. In an MPI job every rank meets the same errors, notes and
    interrupts: rank 0 alone prints them (a rank that fails alone says so itself before aborting the job)."""
    from xpnet.distributed import launched_rank

    args = build_parser().parse_args(argv)
    speaks = launched_rank() == 0
    with warnings.catch_warnings():
        warnings.showwarning = _notice if speaks else (lambda *_args, **_kwargs: None)
        try:
            return COMMANDS[args.command](args)
        except XpnetError as exc:
            if speaks:
                _error(f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
            return exc.exit_code
        except OSError as exc:  # a file the user named cannot be written or read (permissions, full disk...)
            where = f" ({exc.filename})" if exc.filename else ""
            if speaks:
                _error(f"{exc.strerror or exc}{where}; check the path and its permissions")
            return 2
        except KeyboardInterrupt:
            if speaks:
                print("xpnet: interrupted", file=sys.stderr)
            return 130
