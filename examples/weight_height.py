"""A 2-2-1 sigmoid network that tells women from men by weight and height, trained online on four people.

Inputs are weight - 135 (lb) and height - 66 (in); 1 means female. After 1,000 epochs of online SGD on the
mean squared error (learning rate 0.1), the tutorial's network says Emily is female (0.951 > 0.9) and Frank is
not (0.039 < 0.1).
"""

from __future__ import annotations

import numpy as np
from tutorial_helpers import parser, report, run_example

from xpnet.layers import Dense
from xpnet.model import Model

PEOPLE = np.array([[-2, -1], [25, 6], [17, 4], [-15, -6]], dtype=np.float64)  # Alice, Bob, Charlie, Diana
FEMALE = np.array([1, 0, 0, 1], dtype=np.float64)
EMILY, FRANK = [-7, -3], [20, 2]


def main(argv: list[str] | None = None) -> tuple[float, float]:
    """Train the network and return its predictions for Emily and Frank."""
    args = parser(__doc__).parse_args(argv)
    layers = [
        Dense(2, "sigmoid", input_dim=2, init="normal", init_scale=1.0),  # weights from N(0, 1), as in the tutorial
        Dense(1, "sigmoid", input_dim=2, init="normal", init_scale=1.0),
    ]
    model = Model(layers, "mse", "sgd", lr=0.1, device=args.device, seed=args.seed)
    model.fit(PEOPLE, FEMALE, epochs=1_000, batch_size=1, verbose=0)
    emily, frank = (float(p) for p in model.predict_proba([EMILY, FRANK])[:, 0])
    return report("Emily", emily, "0.951 > 0.9"), report("Frank", frank, "0.039 < 0.1")


if __name__ == "__main__":
    run_example(main)
