"""Image files (and .npy arrays) as the model's pixels: the one conversion for `aepipe score` and
the folder dataset; and the name of an image shape in messages.

PNG, JPEG, TIFF, BMP and WebP files are read, each as it displays: its EXIF orientation applied (a
photograph stored sideways is scored upright, and its maps are written upright). A 16-bit file (TIFF
or PNG, greyscale or colour TIFF) keeps its 16 bits (uint16 pixels) up to the model's floats; a
multi-page TIFF is refused (one image per file). An image is converted to the model's shape, and
each
conversion is one a reader can foresee:
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
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from aepipe.data.tiles import Tiling
from aepipe.errors import AepipeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FORMATS = "PNG, JPEG, TIFF, BMP or WebP"
MAX_PIXELS = 4096 * 4096  # larger inputs are refused before their pixels are read
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, the weights of Pillow's convert("L")
T = TypeVar("T")


@dataclass(frozen=True)
class ImageFile:
    # (side, side) for greyscale, (side, side, 3) for colour: uint8, uint16 from a 16-bit file
    pixels: np.ndarray
    size: tuple[int, int]  # (width, height) of the file's image, as it displays
    colour: bool  # the file held colour (converted if the model takes greyscale)


def read_image(
    path: Path, side: int, channels: int, enlarge: bool = False, tiled: bool = False
) -> ImageFile:
    """The image at `path`, as it displays, as `channels` × `side` × `side` pixels; a refusal names
    the file. `enlarge`: a smaller image is enlarged rather than refused (a texture that fills
    synthetic defects). `tiled`: kept at its own size, to be cut into tiles of `side`
    (aepipe.data.tiles)."""

    def convert(image: Image.Image) -> ImageFile:
        _check_pages(path, image)
        if tiled:  # turning it by 90° swaps the sides: one check for both
            _check_size(path, *image.size, 1)
            Tiling(side, 0).check(str(path), image.size[1], image.size[0])
        else:
            _check_size(path, *image.size, 1 if enlarge else side)
        pixels = _displayed_pixels(path, image, channels)
        return ImageFile(
            pixels if tiled else _resized(pixels, side),
            (pixels.shape[1], pixels.shape[0]),
            image.mode not in GREY_MODES,
        )

    return _opened(path, convert)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image at `path` as it displays."""

    def displayed_size(image: Image.Image) -> tuple[int, int]:
        _check_pages(path, image)
        _check_size(path, *image.size, 1)
        image.load()
        return image.size[::-1] if _orientation(image) >= 5 else image.size

    return _opened(path, displayed_size)


def unit_floats(pixels: np.ndarray) -> np.ndarray:
    """uint8 or uint16 pixels as float32 in [0, 1], each at its own depth."""
    return pixels.astype(np.float32) / np.iinfo(pixels.dtype).max


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    """Pixels at 8 bits, as a dataset holds them (16-bit ones rounded to the nearest 8-bit
    level)."""
    return (
        pixels if pixels.dtype == np.uint8 else np.round(unit_floats(pixels) * 255).astype(np.uint8)
    )


def _check_pages(path: Path, image: Image.Image) -> None:
    pages = getattr(image, "n_frames", 1)
    if pages > 1:
        raise AepipeError(
            f"{path}: a file of {pages} pages (or frames); expected one image per file"
        )


def _displayed_pixels(path: Path, image: Image.Image, channels: int) -> np.ndarray:
    """The file's pixels as it displays, in the model's channels: uint8, or uint16 from a 16-bit
    file. Pillow turns a TIFF itself as it loads it (and drops its orientation tag), other formats
    not."""
    bits = getattr(image, "tag_v2", {}).get(258, (8,))  # a TIFF's BitsPerSample
    if (
        image.mode not in SIXTEEN_BIT_MODES
        and max(bits if isinstance(bits, tuple) else (bits,)) == 16
    ):
        return _in_channels(
            _turned_as_displayed(_colour_tiff_16_bit(path), image.getexif()), channels
        )
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        return _in_channels(np.asarray(image).astype(np.uint16), channels)
    wanted = "L" if channels == 1 else "RGB"
    return np.asarray(image if image.mode == wanted else image.convert(wanted))


def _turned_as_displayed(pixels: np.ndarray, exif: Image.Exif) -> np.ndarray:
    """(H, W, 3) pixels that tifffile read as stored, turned as their file's EXIF orientation says:
    PIL.ImageOps.exif_transpose, a channel at a time (Pillow holds no 16-bit colour image)."""
    turned = []
    for channel in np.moveaxis(pixels, -1, 0):
        plane = Image.fromarray(np.ascontiguousarray(channel))
        plane.info["exif"] = exif.tobytes()
        turned.append(np.asarray(ImageOps.exif_transpose(plane)))
    return np.stack(turned, axis=-1)


def _orientation(image: Image.Image) -> int:
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def _colour_tiff_16_bit(path: Path) -> np.ndarray:
    """(H, W, 3) uint16 as stored: Pillow reads a 16-bit colour TIFF at 8 bits, tifffile at 16."""
    import tifffile

    try:
        pixels = tifffile.imread(path, key=0)
    # a compression it cannot decode names the package that would
    except (KeyError, ValueError) as error:
        raise AepipeError(f"{path}: a 16-bit TIFF that tifffile cannot decode ({error})") from None
    return pixels[..., :3] if pixels.ndim == 3 else pixels


def _in_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """16-bit pixels in the model's channels, as Pillow's convert does it for 8 bits (ITU-R 601
    luma; grey into every channel), in floats: (H, W) or (H, W, 3) float64."""
    floats = pixels.astype(np.float64)
    if channels == 1 and floats.ndim == 3:
        return floats @ LUMA
    return np.repeat(floats[..., None], 3, axis=2) if channels == 3 and floats.ndim == 2 else floats


def _resized(pixels: np.ndarray, side: int) -> np.ndarray:
    """side × side (Lanczos): uint8 pixels as uint8, 16-bit ones (floats) in floats, as uint16."""
    if pixels.shape[:2] == (side, side):
        return (
            pixels
            if pixels.dtype == np.uint8
            else np.round(np.clip(pixels, 0, 65535)).astype(np.uint16)
        )
    if pixels.dtype == np.uint8:
        return np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels)).resize(
                (side, side), Image.Resampling.LANCZOS
            )
        )
    planes = [pixels] if pixels.ndim == 2 else [pixels[..., channel] for channel in range(3)]
    planes = [
        np.asarray(
            Image.fromarray(plane.astype(np.float32), mode="F").resize(
                (side, side), Image.Resampling.LANCZOS
            )
        )
        for plane in planes
    ]
    resized = planes[0] if len(planes) == 1 else np.stack(planes, axis=2)
    return np.round(np.clip(resized, 0, 65535)).astype(np.uint16)


def _opened(path: Path, use: Callable[[Image.Image], T]) -> T:
    """`use` applied to the image file opened; what Pillow cannot or will not read is refused,
    naming it."""
    try:
        with Image.open(path) as image:
            return use(image)
    except Image.DecompressionBombError:
        raise AepipeError(
            f"{path}: too many pixels to decompress safely (at most {MAX_PIXELS:,}); a "
            "decompression bomb, or an image to scale down first"
        ) from None
    except (UnidentifiedImageError, OSError) as error:
        raise AepipeError(
            f"{path}: not a readable image ({type(error).__name__}); expected a {FORMATS} file"
        ) from None


def _check_size(path: Path, width: int, height: int, side: int) -> None:
    if width * height > MAX_PIXELS:
        raise AepipeError(f"{path}: {width}×{height} pixels is too large (at most {MAX_PIXELS:,})")
    if min(width, height) < side:
        raise AepipeError(
            f"{path}: {width}×{height} pixels is smaller than the {side}×{side} the model takes; "
            "expected at least that (enlarging adds no detail: choose a smaller data.side)"
        )


def image_files(folder: Path) -> list[Path]:
    """The image files (IMAGE_SUFFIXES) directly in `folder`, sorted by name."""
    return sorted(
        file
        for file in folder.iterdir()
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES
    )


def read_image_tree(folder: Path, side: int, channels: int) -> np.ndarray:
    """Every image file under `folder` (its subfolders too: DTD keeps one per category), of any
    size and colour, as (N, side, side) or (N, side, side, 3) uint8 pixels (enlarged where smaller);
    other files are left out. An unreadable image, or none at all, is refused naming it."""
    files = sorted(
        file
        for file in folder.rglob("*")
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise AepipeError(f"{folder}: no {FORMATS} files in this folder or below it")
    return np.stack(
        [as_uint8(read_image(file, side, channels, enlarge=True).pixels) for file in files]
    )


def other_files(folder: Path) -> list[Path]:
    """The files directly in `folder` that `image_files` leaves out (hidden ones aside)."""
    return sorted(
        file
        for file in folder.iterdir()
        if file.is_file()
        and not file.name.startswith(".")
        and file.suffix.lower() not in IMAGE_SUFFIXES
    )


def shape_name(channels: int, side: int) -> str:
    """`1×28×28 (greyscale)`: the images a model or detector takes, as its refusals name them."""
    return f"{channels}×{side}×{side} ({'greyscale' if channels == 1 else 'colour'})"
