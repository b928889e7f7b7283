"""Reading one image file, with the one wording every task uses for a file that cannot be read."""

from __future__ import annotations

import os

from PIL import Image, UnidentifiedImageError

from xpnet.errors import DataError


def open_image(path: str | os.PathLike, mode: str) -> Image.Image:
    """The image at ``path``, decoded and converted to ``mode`` ("L", "RGB"), or DataError naming the file."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); give a PNG, JPEG or other common format") from None
