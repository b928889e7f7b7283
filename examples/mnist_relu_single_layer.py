"""A single-layer 784-10 ReLU network trained online on MNIST: at least 88% test accuracy.

Inputs are pixels / 255, targets one-hot rows, the loss the summed squared error. Small initial weights and a
small learning rate (3e-4) keep the ten ReLU outputs from dying; one pass over the data is enough.
"""

from __future__ import annotations

import numpy as np
from tutorial_helpers import mnist_online_accuracy, mnist_parser, report, run_example

from xpnet.layers import Dense
from xpnet.model import Model


def main(argv: list[str] | None = None) -> float:
    """Train the network and return its test accuracy."""
    args = mnist_parser(__doc__, epochs=1, lr=3e-4).parse_args(argv)
    model = Model([Dense(10, "relu", input_dim=784, init="uniform", init_scale=0.01)], "sse", "sgd", lr=args.lr,
                  device=args.device, seed=args.seed)
    accuracy = mnist_online_accuracy(model, args, lambda pixels: pixels / 255.0, lambda d: np.eye(10)[d])
    return report("test accuracy", accuracy, ">= 0.88")


if __name__ == "__main__":
    run_example(main)
