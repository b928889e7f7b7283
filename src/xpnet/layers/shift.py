"""RandomShift: in training, translate each image by a random whole number of pixels, filling with zeros.

Data augmentation as Keras's ``RandomTranslation(fill_mode="constant")`` does it with whole-pixel shifts: image n of
a batch moves ``down`` rows and ``right`` columns, each uniform in [-max, max], and what moves in from outside is
zero. The shifts come from the counter-based hash Dropout uses, of (seed, step, 2n) and (seed, step, 2n + 1), so
the CPU and the GPU draw the same shifts and a resumed run draws exactly those of an uninterrupted one. At
inference the layer is the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.errors import ConfigError
from xpnet.layers.base import Layer, Phase, Shape, Workspace, register
from xpnet.layers.dropout import SEED_RANGE, check_seed, stream_seed


def _max_shift_pair(value: Any) -> tuple[int, int]:
    """One non-negative int for both axes, or (height, width) of them; ConfigError otherwise."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in pair):
        raise ConfigError(f"RandomShift max_shift must be a non-negative integer or (height, width) of them, got "
                          f"{value!r}")
    return pair[0], pair[1]


@register
class RandomShift(Layer):
    """``RandomShift(max_shift, seed=None)`` on (H, W, C) inputs: in training, each image moves by up to
    ``max_shift`` pixels (one int, or (height, width)) each way, zero filled; the identity at inference. ``seed``
    is drawn from the model's seed if None."""

    type_name = "random_shift"
    uses_step = True

    def __init__(self, max_shift: int | tuple[int, int], seed: int | None = None, *,
                 input_shape: Any = None) -> None:
        super().__init__(input_shape=input_shape)
        self.max_shift = _max_shift_pair(max_shift)
        check_seed(seed, "RandomShift")
        self.seed = seed

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ConfigError(f"RandomShift takes (height, width, channels) inputs, but its inputs have shape "
                              f"{input_shape} per sample; put a Reshape((height, width, channels)) before it")
        (h, w, _), (mh, mw) = input_shape, self.max_shift
        if mh >= h or mw >= w:
            raise ConfigError(f"a max_shift of ({mh}, {mw}) pixels must be smaller than the {h}x{w} image")
        return input_shape

    def initialize(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.seed is None:
            self.seed = int(rng.integers(SEED_RANGE))
        return {}

    @property
    def shifts(self) -> bool:
        """Whether training moves anything (a max_shift of 0 both ways does not)."""
        return self.max_shift != (0, 0)

    def workspace(self, rows: int, backward: bool, need_dx: bool) -> Workspace:
        if not backward or not self.shifts:
            return Workspace(backward=backward)
        empty = self.backend.empty
        buffers = {"out": empty((rows, *self.input_shape))}
        if need_dx:
            buffers["dx"] = empty((rows, *self.input_shape))
        return Workspace(buffers, backward=backward)

    def forward(self, x: Any, ws: Workspace, phase: Phase) -> Any:
        ws.training = phase.training and "out" in ws.batch
        if not ws.training:
            return x
        ws.phase = phase
        self.backend.kernels.random_shift(x, *self.max_shift, stream_seed(self.seed, phase), phase.step,
                                          ws.batch["out"])
        return ws.batch["out"]

    def backward(self, dy: Any, ws: Workspace, need_dx: bool) -> Any:
        """The adjoint: dy moved back by each image's shift (zero filled), only when the input gradient is needed."""
        if not need_dx:
            return None
        if not ws.training:
            return dy
        phase = ws.phase
        self.backend.kernels.random_shift_backward(dy, *self.max_shift, stream_seed(self.seed, phase), phase.step,
                                                   ws.batch["dx"])
        return ws.batch["dx"]

    def settings(self) -> dict[str, Any]:
        mh, mw = self.max_shift
        return {"max_shift": mh if mh == mw else [mh, mw], "seed": self.seed}

    def details(self) -> str:
        mh, mw = self.max_shift
        return f"max shift {mh}" if mh == mw else f"max shift ({mh}, {mw})"
