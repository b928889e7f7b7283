"""A tqdm progress bar per epoch, showing the running loss and accuracy."""

from __future__ import annotations

from tqdm import tqdm


class EpochProgress:
    """One epoch's bar; a no-op when disabled, so the training loop needs no ``if verbose`` of its own."""

    def __init__(self, epoch: int, epochs: int, steps: int, done: int = 0, enabled: bool = True) -> None:
        self._bar = None
        if enabled:
            width = len(str(epochs))
            self._bar = tqdm(
                total=steps, initial=done, desc=f"epoch {epoch:>{width}}/{epochs}", unit="step",
                leave=True, dynamic_ncols=True, mininterval=0.2,
            )

    def update(self, done: int, loss: float, accuracy: float) -> None:
        """Move the bar to ``done`` steps and show the running metrics."""
        if self._bar is None:
            return
        self._bar.update(done - self._bar.n)
        self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.4f}", refresh=False)

    def finish(self, logs: dict[str, float]) -> None:
        """Show the epoch's final metrics (validation included) and close the bar."""
        if self._bar is None:
            return
        shown = {k.replace("accuracy", "acc"): f"{v:.4f}" for k, v in logs.items() if k != "time"}
        self._bar.set_postfix(shown, refresh=True)
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
