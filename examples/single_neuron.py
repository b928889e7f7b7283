"""One sigmoid neuron with three inputs, trained by error-weighted derivative updates.

The tutorial trains it 10,000 times on four examples whose output is their first input, then asks about the
new situation [1, 0, 0]: it answers 0.99993704, above 0.99.
"""

from __future__ import annotations

import numpy as np
from tutorial_helpers import classic_net, parser, report, run_example

INPUTS = np.array([[0, 0, 1], [1, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=np.float64)
OUTPUTS = np.array([0, 1, 1, 0], dtype=np.float64)


def main(argv: list[str] | None = None) -> float:
    """Train the neuron and return its prediction for [1, 0, 0]."""
    args = parser(__doc__).parse_args(argv)
    model = classic_net([3, 1], args.device, args.seed)
    model.fit(INPUTS, OUTPUTS, epochs=10_000, batch_size=None, verbose=0)
    prediction = float(model.predict_proba([[1, 0, 0]])[0, 0])
    return report("prediction for [1, 0, 0]", prediction, "0.99993704 > 0.99")


if __name__ == "__main__":
    run_example(main)
