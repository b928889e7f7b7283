"""What the fuzz tests of the file readers share: damaging a valid file the way a bad disk or download would."""

from __future__ import annotations

from hypothesis import strategies as st


def corrupt(draw, original: bytes) -> bytes:
    """Apply one to three random flips, cuts and insertions to ``original``."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "cut", "insert"]))
        if operation == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif operation == "cut":
            del data[position : position + draw(st.integers(1, 64))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)
