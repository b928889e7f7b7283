"""Helpers shared by the tutorial examples: options, the tutorials' XOR data and network, metrics, MNIST."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xpnet.backend import DEVICES
from xpnet.data.mnist import default_data_dir, load_mnist, make_mnist_csv, read_mnist_csv
from xpnet.errors import XpnetError
from xpnet.layers import Dense
from xpnet.model import Model

XOR_INPUTS = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)
"""The classic tutorials' inputs: two bits and a constant 1 (which plays the bias)."""
XOR_TARGETS = np.array([0, 1, 1, 0], dtype=np.float64)

KERAS_INIT = "glorot_uniform"
"""Keras's default kernel initialiser, for every layer whatever its activation (xpnet's default is He for ReLU)."""


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every example has: ``--device`` and ``--seed``."""
    options = argparse.ArgumentParser(description=description)
    options.add_argument("--device", choices=DEVICES, default="auto", help="where to train (default: auto)")
    options.add_argument("--seed", type=int, default=1, help="seed of the initial weights and the shuffling")
    return options


def classic_net(sizes: Sequence[int], device: str, seed: int) -> Model:
    """The early tutorials' network: bias-free sigmoid layers with weights uniform in [-1, 1).

    Their update adds the error-weighted derivative, ``x.T @ ((y - a) * a * (1 - a))``, for the whole training
    set at once: that is gradient descent on the summed squared error with learning rate 1, full batch.
    """
    layers = [
        Dense(n_out, "sigmoid", input_dim=n_in, bias=False, init="uniform", init_scale=1.0)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return Model(layers, "sse", "sgd", lr=1.0, device=device, seed=seed)


def max_error(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """The largest distance between a single-output model's prediction and its target."""
    return float(np.abs(model.predict_proba(x)[:, 0] - y).max())


def report(what: str, value: float, published: str) -> float:
    """Print the reproduced value beside the published one, and return it."""
    print(f"{what}: {value:.6g} (published: {published})")
    return value


def mnist_parser(description: str | None, epochs: int, lr: float) -> argparse.ArgumentParser:
    """``parser`` plus the MNIST options: where the data is, how much of it to use, epochs, learning rate."""
    options = parser(description)
    add = options.add_argument
    add("--data-dir", type=Path, default=default_data_dir(), help="the folder with the MNIST IDX files")
    add("--csv-dir", type=Path, help="where mnist_train.csv and mnist_test.csv are made, or found if they "
        "exist (default: the data folder)")
    add("--rows", type=int, help="train on the first ROWS training rows only (default: all)")
    add("--epochs", type=int, default=epochs, help=f"passes over the training data (default: {epochs})")
    add("--lr", type=float, default=lr, help=f"learning rate (default: {lr})")
    return options


def mnist_online_accuracy(
    model: Model,
    args: argparse.Namespace,
    features: Callable[[np.ndarray], np.ndarray],
    targets: Callable[[np.ndarray], np.ndarray],
) -> float:
    """Train ``model`` online (one image a step) on MNIST read from CSV; return its test accuracy.

    The CSV files are made from the IDX files first when ``args.csv_dir`` lacks them. ``features`` turns uint8
    pixel rows into inputs, ``targets`` digit labels into target rows.
    """
    csv_dir = args.csv_dir or args.data_dir
    train_csv, test_csv = csv_dir / "mnist_train.csv", csv_dir / "mnist_test.csv"
    if not (train_csv.is_file() and test_csv.is_file()):
        train_csv, test_csv = make_mnist_csv(args.data_dir, csv_dir)
    x_train, y_train = read_mnist_csv(train_csv)
    x_test, y_test = read_mnist_csv(test_csv)
    x_train, y_train = x_train[: args.rows], y_train[: args.rows]
    model.fit(features(x_train), targets(y_train), epochs=args.epochs, batch_size=1, verbose=0)
    return float(np.mean(model.predict(features(x_test)) == y_test))


def keras_mnist(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST as the Keras tutorials feed it: (28, 28, 1) float32 images of the raw 0-255 pixel values (they reshape
    the arrays but do not rescale them, which is what makes plain SGD on MSE learn as fast as they report), integer
    labels; the first ``args.rows`` training images when given."""
    data = load_mnist(args.data_dir, download=False)
    x_train, x_test = (pixels.reshape(-1, 28, 28, 1).astype(np.float32) for pixels in (data.x_train, data.x_test))
    return x_train[: args.rows], data.y_train[: args.rows], x_test, data.y_test


def run_example(main: Callable[[], object]) -> None:
    """Run an example's ``main`` as a command: an xpnet error is one line on stderr and exit code 2."""
    try:
        main()
    except XpnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
