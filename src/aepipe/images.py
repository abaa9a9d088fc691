"""Image files as the model's pixels: the one conversion for `aepipe score` and the folder dataset.

An image is converted to the model's shape, and each conversion is one a reader can foresee:
- colour: to greyscale for 1 channel (ITU-R 601 luma, Pillow's "L"), greyscale to RGB for 3
  (the grey copied into each channel); an alpha channel is dropped;
- size: resized (Lanczos) to side × side. A non-square image is stretched to a square, and its
  anomaly map stretched back to the image's own size (`ImageFile.size`), so every pixel is
  covered and a defect's place is kept; the folder dataset says how many it stretched;
- an image smaller than side × side is refused (enlarging adds no detail to find a defect in),
  and so is one larger than MAX_PIXELS, before its pixels are decompressed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from aepipe.errors import AepipeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 4096 * 4096  # larger inputs are refused before their pixels are read
T = TypeVar("T")


@dataclass(frozen=True)
class ImageFile:
    pixels: np.ndarray  # uint8 (side, side) for greyscale, (side, side, 3) for colour
    size: tuple[int, int]  # (width, height) of the file's image
    colour: bool  # the file held colour (converted if the model takes greyscale)


def read_image(path: Path, side: int, channels: int) -> ImageFile:
    """The image at `path` as `channels` × `side` × `side` uint8 pixels; a refusal names the file."""

    def convert(image: Image.Image) -> ImageFile:
        _check_size(path, image.width, image.height, side)
        colour = image.mode not in ("1", "L", "LA", "I", "I;16", "F")
        converted = image.convert("L" if channels == 1 else "RGB")
        if converted.size != (side, side):
            converted = converted.resize((side, side), Image.Resampling.LANCZOS)
        return ImageFile(np.asarray(converted, dtype=np.uint8), image.size, colour)

    return _opened(path, convert)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image at `path`, read from its header."""
    return _opened(path, lambda image: image.size)


def _opened(path: Path, use: Callable[[Image.Image], T]) -> T:
    """`use` applied to the image file opened; what Pillow cannot or will not read is refused, naming it."""
    try:
        with Image.open(path) as image:
            return use(image)
    except Image.DecompressionBombError:
        raise AepipeError(f"{path}: too many pixels to decompress safely (at most {MAX_PIXELS:,}); "
                          "a decompression bomb, or an image to scale down first") from None
    except (UnidentifiedImageError, OSError) as error:
        raise AepipeError(f"{path}: not a readable PNG or JPEG image ({type(error).__name__})") from None


def _check_size(path: Path, width: int, height: int, side: int) -> None:
    if width * height > MAX_PIXELS:
        raise AepipeError(f"{path}: {width}×{height} pixels is too large (at most {MAX_PIXELS:,})")
    if min(width, height) < side:
        raise AepipeError(f"{path}: {width}×{height} pixels is smaller than the {side}×{side} the model takes; "
                          "expected at least that (enlarging adds no detail: choose a smaller data.side)")


def image_files(folder: Path) -> list[Path]:
    """The PNG and JPEG files directly in `folder`, sorted by name."""
    return sorted(file for file in folder.iterdir() if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)


def other_files(folder: Path) -> list[Path]:
    """The files directly in `folder` that `image_files` leaves out (hidden ones aside)."""
    return sorted(file for file in folder.iterdir() if file.is_file() and not file.name.startswith(".")
                  and file.suffix.lower() not in IMAGE_SUFFIXES)
