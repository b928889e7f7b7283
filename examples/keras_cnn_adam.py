"""The Keras tutorial's first convolutional network on MNIST: Conv2D(64, 3, relu) -> Conv2D(32, 3, relu) ->
Flatten -> Dense(10, softmax), Adam, categorical cross-entropy, one epoch (Keras's default batch of 32).

The tutorial prints no figure for it; one epoch reaches well over 97% test accuracy.
"""

from __future__ import annotations

import numpy as np
from tutorial_helpers import KERAS_INIT, keras_mnist, mnist_parser, report, run_example

from xpnet import Conv2D, Dense, Flatten, Sequential


def main(argv: list[str] | None = None) -> float:
    """Train the network and return its test accuracy."""
    args = mnist_parser(__doc__, epochs=1, lr=1e-3).parse_args(argv)
    x_train, y_train, x_test, y_test = keras_mnist(args)
    model = Sequential(
        [Conv2D(64, 3, activation="relu", init=KERAS_INIT), Conv2D(32, 3, activation="relu", init=KERAS_INIT),
         Flatten(), Dense(10, "softmax", init=KERAS_INIT)],
        "categorical_crossentropy", "adam", input_shape=(28, 28, 1), lr=args.lr, device=args.device, seed=args.seed,
    )
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    accuracy = float(np.mean(model.predict(x_test) == y_test))
    return report("test accuracy", accuracy, "none printed; >= 0.97 expected after one epoch")


if __name__ == "__main__":
    run_example(main)
