"""Image files (and .npy arrays) as the model's pixels: the one conversion for `aepipe score` and the
folder dataset; and the name of an image shape in messages.

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


def read_image(path: Path, side: int, channels: int, enlarge: bool = False) -> ImageFile:
    """The image at `path` as `channels` × `side` × `side` uint8 pixels; a refusal names the file.
    `enlarge`: a smaller image is enlarged rather than refused (a texture that fills synthetic defects)."""

    def convert(image: Image.Image) -> ImageFile:
        _check_size(path, image.width, image.height, 1 if enlarge else side)
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


def read_image_tree(folder: Path, side: int, channels: int) -> np.ndarray:
    """Every PNG and JPEG file under `folder` (its subfolders too: DTD keeps one per category), of any
    size and colour, as (N, side, side) or (N, side, side, 3) uint8 pixels (enlarged where smaller); other
    files are left out. An unreadable image, or none at all, is refused naming it."""
    files = sorted(file for file in folder.rglob("*") if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AepipeError(f"{folder}: no .png, .jpg or .jpeg files in this folder or below it")
    return np.stack([read_image(file, side, channels, enlarge=True).pixels for file in files])


def other_files(folder: Path) -> list[Path]:
    """The files directly in `folder` that `image_files` leaves out (hidden ones aside)."""
    return sorted(file for file in folder.iterdir() if file.is_file() and not file.name.startswith(".")
                  and file.suffix.lower() not in IMAGE_SUFFIXES)


def _images_layout(array: np.ndarray) -> np.ndarray | None:
    """(N, H, W) for greyscale or (N, H, W, 3) for colour from the layouts an array may come in; None
    for none of them."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[3] not in (1, 3):  # channels first
        array = array.transpose(0, 2, 3, 1)
    if array.ndim == 4 and array.shape[3] == 1:
        return array[..., 0]
    return array if array.ndim == 3 or (array.ndim == 4 and array.shape[3] == 3) else None


def load_images(paths: list[Path], side: int, channels: int) -> tuple[list[str], np.ndarray, list[tuple[int, int]]]:
    """(sources, float32 images (N, side, side) or (N, side, side, 3) in [0, 1], each image's own
    (width, height)) from files, folders and .npy arrays."""
    sources, arrays, sizes = [], [], []

    def add_file(file: Path) -> None:
        image = read_image(file, side, channels)
        sources.append(str(file))
        arrays.append(image.pixels[None].astype(np.float32) / 255)
        sizes.append(image.size)

    for path in paths:
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise AepipeError(f"{path}: no .png, .jpg or .jpeg files in this folder")
            for file in files:
                add_file(file)
        elif not path.exists():
            raise AepipeError(f"{path}: no such file or folder")
        elif path.suffix.lower() == ".npy":
            batch = read_npy(path, side, channels)
            sources.extend(f"{path}[{index}]" for index in range(len(batch)))
            arrays.append(batch)
            sizes.extend([(side, side)] * len(batch))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            add_file(path)
        else:
            raise AepipeError(f"{path}: unsupported file; expected .png, .jpg, .jpeg, .npy or a folder")
    return sources, np.concatenate(arrays).astype(np.float32), sizes


def read_npy(path: Path, side: int, channels: int) -> np.ndarray:
    """A .npy array's images in the dataset's layout, (N, side, side) or (N, side, side, 3), in [0, 1]."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise AepipeError(f"{path}: not a readable .npy array ({error})") from None
    shape, array = array.shape, _images_layout(array)
    if array is None or array.shape[1:3] != (side, side) or (array.ndim == 4) != (channels == 3) or len(array) == 0:
        expected = (f"(N, {side}, {side}, 3) or (N, 3, {side}, {side})" if channels == 3
                    else f"({side}, {side}), (N, {side}, {side}) or (N, 1, {side}, {side})")
        raise AepipeError(f"{path}: array of shape {shape}; the model takes "
                          f"{shape_name(channels, side)} images: expected {expected}, N ≥ 1")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1:
        return array.astype(np.float32)
    raise AepipeError(f"{path}: {array.dtype} values from {array.min()} to {array.max()}; expected uint8 (0–255) or floats in [0, 1]")


def shape_name(channels: int, side: int) -> str:
    """`1×28×28 (greyscale)`: the images a model or detector takes, as its refusals name them."""
    return f"{channels}×{side}×{side} ({'greyscale' if channels == 1 else 'colour'})"
