"""An anomaly map drawn over its image, with NumPy alone: the figures and `aepipe score --maps`
share it, and an install for serving (no matplotlib) draws the same previews; and --maps' PNG
files."""

from pathlib import Path

import numpy as np

from aepipe.atomic import atomic_path
from aepipe.data.images import IMAGE_SUFFIXES

PREVIEW_HEIGHT = 224  # pixels: --maps enlarges smaller images to about this, as 8 × 28 for MNIST

# ColorBrewer's YlOrRd: matplotlib's "YlOrRd" colormap, whose lookup table HEAT is built as
# matplotlib builds it (LinearSegmentedColormap, 256 entries), so a pixel gets the same colour
# either way.
YL_OR_RD = (
    np.array(
        [
            (255, 255, 204),
            (255, 237, 160),
            (254, 217, 118),
            (254, 178, 76),
            (253, 141, 60),
            (252, 78, 42),
            (227, 26, 28),
            (189, 0, 38),
            (128, 0, 38),
        ]
    )
    / 255
)
COLOURS = 256


def lookup_table(colours: np.ndarray, entries: int = COLOURS) -> np.ndarray:
    """(entries, 3): the colours spread evenly over [0, 1], linearly interpolated between them."""
    stops = np.linspace(0, 1, len(colours)) * (entries - 1)
    points = (entries - 1) * np.linspace(0, 1, entries)
    right = np.searchsorted(stops, points)[1:-1]
    distance = (points[1:-1] - stops[right - 1]) / (stops[right] - stops[right - 1])
    inner = distance[:, None] * (colours[right] - colours[right - 1]) + colours[right - 1]
    return np.clip(np.concatenate([colours[:1], inner, colours[-1:]]), 0.0, 1.0)


HEAT = lookup_table(YL_OR_RD)


def heat(values: np.ndarray) -> np.ndarray:
    """RGB (…, 3) of values in [0, 1] (clipped), by the table entry each falls in, as matplotlib
    maps them."""
    # in the values' own float type, as matplotlib computes it
    scaled = np.clip(values, 0, 1) * COLOURS
    return HEAT[np.minimum(scaled.astype(int), COLOURS - 1)]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A greyscale digit as the binary colour map draws it (ink dark on white), or an RGB image as
    it is."""
    return image if image.ndim == 3 else np.repeat(1 - image[..., None], 3, axis=2)


def anomaly_overlay(image: np.ndarray, error_map: np.ndarray) -> np.ndarray:
    """An image (H, W) in [0, 1] drawn dark on white, or (H, W, 3) RGB as it is, with its anomaly
    map (H, W) (|error| per pixel, in [0, 1]) over it in colour, more opaque where the error is
    larger: (H, W, 3) RGB in [0, 1]."""
    # an error of half the pixel range is fully opaque
    opacity = np.clip(2 * error_map, 0, 1)[..., None]
    return np.clip((1 - opacity) * as_rgb(image) + opacity * heat(error_map), 0, 1)


def write_map(
    folder: Path,
    number: int,
    source: str,
    image: np.ndarray,
    size: tuple[int, int],
    error_map: np.ndarray,
    mask: np.ndarray | None,
) -> None:
    """An image, numbered by its place in the scoring order: the image and, beside it, its anomaly
    map over it (enlarged to about 224 pixels high); the map alone, at the image's own size (width,
    height); and, given its `mask`, the defect's mask at that size (`*_mask.png`, 255 in the
    defect)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pair = np.concatenate([as_rgb(image), anomaly_overlay(image, error_map)], axis=1)
    zoom = max(1, PREVIEW_HEIGHT // pair.shape[0])
    picture = Image.fromarray(np.round(pair * 255).astype(np.uint8)).resize(
        (pair.shape[1] * zoom, pair.shape[0] * zoom), Image.Resampling.NEAREST
    )
    name = _map_name(number, source)
    with atomic_path(folder / name) as tmp:
        picture.save(tmp)
    full_size = Image.fromarray(np.round(np.clip(error_map, 0, 1) * 255).astype(np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    with atomic_path(folder / name.replace(".png", "_map.png")) as tmp:
        full_size.save(tmp)
    if mask is not None:
        mask_image = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            size, Image.Resampling.NEAREST
        )
        with atomic_path(folder / name.replace(".png", "_mask.png")) as tmp:
            mask_image.save(tmp)


def _map_name(number: int, source: str) -> str:
    """`0003-digit.png` for scans/digit.jpg, `0004-digits-7.png` for digits.npy[7]: numbered, so
    names never clash."""
    name = Path(source).name
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
    stem = stem.replace(".npy[", "-").rstrip("]")
    return (
        f"{number:04d}-"
        + "".join(char if char.isalnum() or char in "-_." else "_" for char in stem)
        + ".png"
    )
