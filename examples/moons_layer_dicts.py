"""A 2-4-6-6-4-1 network described as a list of layer dicts, classifying two moons.

1,000 points with noise 0.2, a tenth held out for testing; ReLU hidden layers, a sigmoid output and binary
cross-entropy, trained by full-batch gradient descent: at least 95% test accuracy.
"""

from __future__ import annotations

from tutorial_helpers import parser, report, run_example

from xpnet.builders import from_layer_dicts
from xpnet.data.toy import make_moons

ARCHITECTURE = [
    {"input_dim": 2, "output_dim": 4, "activation": "relu"},
    {"input_dim": 4, "output_dim": 6, "activation": "relu"},
    {"input_dim": 6, "output_dim": 6, "activation": "relu"},
    {"input_dim": 6, "output_dim": 4, "activation": "relu"},
    {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"},
]


def main(argv: list[str] | None = None) -> float:
    """Train the network and return its test accuracy."""
    args = parser(__doc__).parse_args(argv)
    x, y = make_moons(1_000, noise=0.2, seed=args.seed)  # shuffled: the last 100 points are for testing
    model = from_layer_dicts(ARCHITECTURE, loss="bce", optimizer="sgd", lr=0.1, device=args.device,
                             seed=args.seed)
    model.fit(x[:900], y[:900], epochs=10_000, batch_size=None, verbose=0)
    return report("test accuracy", model.evaluate(x[900:], y[900:])["accuracy"], ">= 0.95")


if __name__ == "__main__":
    run_example(main)
