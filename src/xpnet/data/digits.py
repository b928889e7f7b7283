"""Turn a photo or drawing of one digit, of any size, into a 28x28 image prepared the way MNIST's were.

MNIST digits are white on black, scaled so that the larger side of the digit's bounding box is 20 pixels
(keeping its aspect ratio), and placed in a 28x28 field with the centre of mass at the centre. A 28x28 image is
taken to have that framing already (an MNIST digit saved as a PNG): it is only made white on black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from xpnet.data.images import open_image
from xpnet.errors import DataError

FIELD = 28
BOX = 20


def read_grayscale(path: str | Path) -> np.ndarray:
    """The image at ``path`` as a 2-D uint8 array, or DataError naming the file."""
    return np.asarray(open_image(path, "L"), dtype=np.uint8)


def mnist_like(gray: np.ndarray, source: str | Path = "the image") -> np.ndarray:
    """A 2-D grayscale digit image as MNIST's 784 uint8 pixels (white digit on black, 20px box, centred; a 28x28
    image keeps its framing).

    ``source`` names the image in error messages."""
    image = gray.astype(np.float64)
    background = float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))
    if background > 127:  # dark ink on a light background: invert, as MNIST's digits are white
        image, background = 255.0 - image, 255.0 - background
    image = np.clip(image - background, 0, 255)
    if image.shape == (FIELD, FIELD):  # already MNIST's framing: resizing and recentring would only distort it
        if image.max() == 0:
            raise DataError(f"{source}: the image is blank; no digit stands out from the background")
        return image.astype(np.uint8).reshape(-1)
    rows, cols = np.nonzero(image > 0.2 * image.max()) if image.max() > 0 else ((), ())
    if len(rows) == 0:
        raise DataError(f"{source}: the image is blank; no digit stands out from the background")
    crop = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(crop.shape)
    height, width = (max(1, round(s * scale)) for s in crop.shape)
    resized = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((width, height), Image.LANCZOS), np.float64)
    field = np.zeros((FIELD, FIELD))
    top, left = (FIELD - height) // 2, (FIELD - width) // 2
    field[top : top + height, left : left + width] = resized
    total = field.sum()
    if total > 0:  # shift so the centre of mass sits at the centre, as MNIST did
        ys, xs = np.indices(field.shape)
        dy = int(round(FIELD / 2 - 0.5 - (ys * field).sum() / total))
        dx = int(round(FIELD / 2 - 0.5 - (xs * field).sum() / total))
        field = np.roll(field, (dy, dx), axis=(0, 1))
    return np.clip(field, 0, 255).astype(np.uint8).reshape(-1)
