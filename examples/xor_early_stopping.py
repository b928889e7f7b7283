"""A 2-3-1 net with a tanh hidden layer and biases, trained on XOR until the validation error stops improving.

Training runs full batch for at most 20,000 epochs; EarlyStopping ends it once the validation loss (on the
four XOR cases) has not improved by 1e-5 for 100 epochs, and restores the best weights. XOR is solved: all
four predictions within 0.1 of their targets (so on the right side of 0.5).
"""

from __future__ import annotations

from tutorial_helpers import XOR_INPUTS, XOR_TARGETS, max_error, parser, report, run_example

from xpnet.callbacks import EarlyStopping
from xpnet.layers import Dense
from xpnet.model import Model


def main(argv: list[str] | None = None) -> float:
    """Train the network and return its largest prediction error."""
    args = parser(__doc__).parse_args(argv)
    x = XOR_INPUTS[:, :2]  # the two bits; this network has real biases
    model = Model([Dense(3, "tanh", input_dim=2), Dense(1, "sigmoid")], "mse", "sgd", lr=1.0, device=args.device,
                  seed=args.seed)
    stopper = EarlyStopping("val_loss", patience=100, min_delta=1e-5)
    history = model.fit(x, XOR_TARGETS, epochs=20_000, batch_size=None, validation_data=(x, XOR_TARGETS),
                        verbose=0, callbacks=[stopper])
    print(f"stopped after {len(history.epoch)} epochs; best validation loss {stopper.best:.2e} at epoch "
          f"{stopper.best_epoch}")
    return report("largest prediction error", max_error(model, x, XOR_TARGETS), "< 0.1")


if __name__ == "__main__":
    run_example(main)
