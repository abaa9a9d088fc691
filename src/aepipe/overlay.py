"""An anomaly map drawn over its image, with NumPy alone: the figures and `aepipe score --maps`
share it, and an install for serving (no matplotlib) draws the same previews."""

import numpy as np

# ColorBrewer's YlOrRd: matplotlib's "YlOrRd" colormap, whose lookup table HEAT is built as matplotlib
# builds it (LinearSegmentedColormap, 256 entries), so a pixel gets the same colour either way.
YL_OR_RD = np.array([(255, 255, 204), (255, 237, 160), (254, 217, 118), (254, 178, 76), (253, 141, 60),
                     (252, 78, 42), (227, 26, 28), (189, 0, 38), (128, 0, 38)]) / 255
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
    """RGB (…, 3) of values in [0, 1] (clipped), by the table entry each falls in, as matplotlib maps them."""
    scaled = np.clip(values, 0, 1) * COLOURS  # in the values' own float type, as matplotlib computes it
    return HEAT[np.minimum(scaled.astype(int), COLOURS - 1)]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A greyscale digit as the binary colour map draws it (ink dark on white), or an RGB image as it is."""
    return image if image.ndim == 3 else np.repeat(1 - image[..., None], 3, axis=2)


def anomaly_overlay(image: np.ndarray, error_map: np.ndarray) -> np.ndarray:
    """An image (H, W) in [0, 1] drawn dark on white, or (H, W, 3) RGB as it is, with its anomaly map
    (H, W) (|error| per pixel, in [0, 1]) over it in colour, more opaque where the error is larger:
    (H, W, 3) RGB in [0, 1]."""
    opacity = np.clip(2 * error_map, 0, 1)[..., None]  # an error of half the pixel range is fully opaque
    return np.clip((1 - opacity) * as_rgb(image) + opacity * heat(error_map), 0, 1)
