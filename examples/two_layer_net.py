"""A 3-4-1 sigmoid network without biases, trained 1,500 full-batch iterations on XOR of the first two inputs.

One neuron cannot learn XOR; with a hidden layer of four, every prediction ends within 0.1 of its target.
"""

from __future__ import annotations

from tutorial_helpers import XOR_INPUTS, XOR_TARGETS, classic_net, max_error, parser, report, run_example


def main(argv: list[str] | None = None) -> float:
    """Train the network and return its largest prediction error."""
    args = parser(__doc__).parse_args(argv)
    model = classic_net([3, 4, 1], args.device, args.seed)
    model.fit(XOR_INPUTS, XOR_TARGETS, epochs=1_500, batch_size=None, verbose=0)
    return report("largest prediction error", max_error(model, XOR_INPUTS, XOR_TARGETS), "< 0.1")


if __name__ == "__main__":
    run_example(main)
