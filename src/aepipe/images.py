"""Image files as 28×28 greyscale pixels: the one conversion for `aepipe score` and the folder dataset."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from aepipe.errors import AepipeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIDE = 28
MAX_PIXELS = 4096 * 4096  # larger inputs are refused before their pixels are read


def read_greyscale(path: Path) -> np.ndarray:
    """uint8 (28, 28): the image as greyscale, resized (Lanczos) if it is not 28×28 already."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise AepipeError(f"{path}: {image.width}×{image.height} pixels is too large (at most {MAX_PIXELS:,})")
            greyscale = image.convert("L")
            if greyscale.size != (SIDE, SIDE):
                greyscale = greyscale.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
            return np.asarray(greyscale, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise AepipeError(f"{path}: not a readable PNG or JPEG image ({type(error).__name__})") from None


def image_files(folder: Path) -> list[Path]:
    """The PNG and JPEG files directly in `folder`, sorted by name."""
    return sorted(file for file in folder.iterdir() if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
