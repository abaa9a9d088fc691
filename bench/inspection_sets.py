"""Inspection sets in the MVTec AD layout, made from real photographs that scikit-image's wheel
ships (DAGM-style: patches of a texture, defects of our own design drawn into some, each with its
mask).

    python bench/inspection_sets.py DEST [--side 64]

writes DEST/<set>/{train/good, test/good, test/<kind>, ground_truth/<kind>} for each set:
- brick: a regular texture (skimage.data.brick), greyscale;
- grass: a stochastic texture (skimage.data.grass), greyscale, the same defect kinds;
- brick-hue: the brick photograph coloured as brick, with defects that differ only in hue (the same
  luminance: a greyscale model cannot see them), beside the same kinds in colour;
- gravel: another stochastic texture (skimage.data.gravel), greyscale, the same kinds (its foreign
  squares are of grass).
The photograph is cut into 128×128 blocks in three interleaved classes (diagonal stripes, (row +
column) % 3): training patches come from the first, calibration patches (validation/good/, MVTec AD
2's layout) from the second, test patches from the third, each patch inside one block, so no
calibration or test pixel was seen in training and all three cover the whole photograph (brick is
taken in perspective: its bricks are smaller at the top than at the bottom, and a top/bottom split
would test on bricks of a size never seen). 1,000 calibration images make a 1 % false-alarm target
usable (aepipe.anomaly.calibration), 500 good test images make it measurable. Defect kinds: scratch
(a thin line, lighter or darker), spot (a dark disc), stain (a soft, low-contrast blot), foreign (a
square of another texture: gravel, or grass on gravel), and for brick-hue, hue (a blot of another
colour, same luminance).

`write_textures` writes what a user's outside texture folder would hold
(train.defects.sources.textures): crops of the wheel's photographs that are neither a set's texture
nor a foreign defect's (OUTSIDE_PHOTOS).
"""

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

TRAIN_IMAGES, CALIBRATION_IMAGES, TEST_GOOD_IMAGES, TEST_IMAGES_PER_KIND = 1900, 1000, 500, 58
TRAIN_BLOCKS, CALIBRATION_BLOCKS, TEST_BLOCKS = 0, 1, 2  # (row + column) % 3 of a block
BLOCK = 128  # pixels: the side of the checkerboard's squares
BRICK_COLOUR = np.array([0.78, 0.42, 0.32])  # RGB of a red brick
# A blue-green of the same luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) as BRICK_COLOUR: a hue
# defect.
OTHER_HUE = (
    np.array([0.22, 0.55, 0.62])
    * (BRICK_COLOUR @ [0.299, 0.587, 0.114])
    / (np.array([0.22, 0.55, 0.62]) @ [0.299, 0.587, 0.114])
)


def crops(
    photo: np.ndarray, stripe: int, count: int, side: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` side × side patches at random places, each inside one block whose (row + column) % 3
    is `stripe`, in [0, 1]."""
    blocks = [
        (row, column)
        for row in range(photo.shape[0] // BLOCK)
        for column in range(photo.shape[1] // BLOCK)
        if (row + column) % 3 == stripe
    ]
    chosen = rng.integers(0, len(blocks), count)
    offsets = rng.integers(0, BLOCK - side + 1, (count, 2))
    tops = [
        blocks[block][0] * BLOCK + offset
        for block, offset in zip(chosen, offsets[:, 0], strict=True)
    ]
    lefts = [
        blocks[block][1] * BLOCK + offset
        for block, offset in zip(chosen, offsets[:, 1], strict=True)
    ]
    return (
        np.stack(
            [
                photo[top : top + side, left : left + side]
                for top, left in zip(tops, lefts, strict=True)
            ]
        ).astype(np.float64)
        / 255
    )


def disc(
    side: int, rng: np.random.Generator, radius: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(distance² from a random centre / radius², the radius): a disc is where the first is ≤ 1."""
    centre, r = rng.uniform(side * 0.2, side * 0.8, 2), rng.uniform(*radius)
    rows, columns = np.mgrid[:side, :side]
    return ((rows - centre[0]) ** 2 + (columns - centre[1]) ** 2) / r**2, r


def scratch(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    side = image.shape[0]
    start, angle, length = (
        rng.uniform(side * 0.15, side * 0.85, 2),
        rng.uniform(0, np.pi),
        rng.uniform(0.25, 0.6) * side,
    )
    rows, columns = np.mgrid[:side, :side] - start[:, None, None]
    along = rows * np.sin(angle) + columns * np.cos(angle)
    across = -rows * np.cos(angle) + columns * np.sin(angle)
    mask = (np.abs(across) <= 0.8) & (along >= 0) & (along <= length)
    image[mask] = np.clip(image[mask] + rng.choice([-1, 1]) * 0.35, 0, 1)
    return mask


def spot(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    distance, _ = disc(image.shape[0], rng, (2.5, 5.0))
    mask = distance <= 1
    image[mask] *= 0.35
    return mask


def stain(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    distance, _ = disc(image.shape[0], rng, (5.0, 9.0))
    blot = np.exp(-2 * distance)  # soft edges: 0.14 at the radius
    image *= 1 - rng.uniform(0.15, 0.25) * blot[(...,) + (None,) * (image.ndim - 2)]
    return blot >= 0.3


def foreign(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    side, size = image.shape[0], int(rng.integers(8, 15))
    top, left = rng.integers(0, side - size + 1, 2)
    g_top, g_left = rng.integers(0, other.shape[0] - size + 1, 2)
    patch = other[g_top : g_top + size, g_left : g_left + size]
    image[top : top + size, left : left + size] = (
        patch if image.ndim == 2 else patch[..., None] * BRICK_COLOUR
    )
    mask = np.zeros((side, side), bool)
    mask[top : top + size, left : left + size] = True
    return mask


def hue(image: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """A blot of another colour of the same luminance: the greyscale image is unchanged."""
    distance, _ = disc(image.shape[0], rng, (5.0, 9.0))
    mask = distance <= 1
    luminance = image[mask] @ [0.299, 0.587, 0.114] / (BRICK_COLOUR @ [0.299, 0.587, 0.114])
    image[mask] = np.clip(luminance[:, None] * OTHER_HUE, 0, 1)
    return mask


OUTSIDE_PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "moon",
    "rocket",
    "hubble_deep_field",
)
OUTSIDE_CROPS, OUTSIDE_CROP_SIDE = 16, 128  # per photograph: 128 textures


DefectMaker = Callable[[np.ndarray, np.random.Generator, np.ndarray], np.ndarray]
KINDS: dict[str, DefectMaker] = {
    "scratch": scratch,
    "spot": spot,
    "stain": stain,
    "foreign": foreign,
}


def write_set(
    dest: Path,
    photo: np.ndarray,
    colour: bool,
    kinds: dict[str, DefectMaker],
    side: int,
    seed: int,
    foreign_photo: np.ndarray,
) -> None:
    """One inspection set from one photograph, in the MVTec AD layout; `foreign_photo` the foreign
    squares'."""
    rng = np.random.default_rng(seed)
    other = foreign_photo.astype(np.float64) / 255
    paint = (lambda grey: grey[..., None] * BRICK_COLOUR) if colour else (lambda grey: grey)

    def save(pixels, path):
        Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)

    for folder, stripe, count in (
        ("train/good", TRAIN_BLOCKS, TRAIN_IMAGES),
        ("validation/good", CALIBRATION_BLOCKS, CALIBRATION_IMAGES),
        ("test/good", TEST_BLOCKS, TEST_GOOD_IMAGES),
    ):
        (dest / folder).mkdir(parents=True)
        for index, patch in enumerate(crops(photo, stripe, count, side, rng)):
            save(paint(patch), dest / folder / f"{index:04d}.png")
    for kind, make in kinds.items():
        (dest / "test" / kind).mkdir(parents=True)
        (dest / "ground_truth" / kind).mkdir(parents=True)
        for index, patch in enumerate(crops(photo, TEST_BLOCKS, TEST_IMAGES_PER_KIND, side, rng)):
            image = paint(patch)
            mask = make(image, rng, other)
            save(image, dest / "test" / kind / f"{index:04d}.png")
            save(mask.astype(np.float64), dest / "ground_truth" / kind / f"{index:04d}_mask.png")


def recipes() -> dict[str, tuple[np.ndarray, bool, dict[str, DefectMaker], np.ndarray]]:
    """Each benchmark set's (photograph, in colour, defect kinds, the foreign squares'
    photograph)."""
    from skimage import data

    return {
        "brick": (data.brick(), False, KINDS, data.gravel()),
        "grass": (data.grass(), False, KINDS, data.gravel()),
        "brick-hue": (data.brick(), True, {**KINDS, "hue": hue}, data.gravel()),
        "gravel": (data.gravel(), False, KINDS, data.grass()),
    }


def write_sets(dest: Path, side: int) -> list[str]:
    """Every benchmark set under `dest`; their names."""
    sets = recipes()
    for seed, (name, (photo, colour, kinds, foreign_photo)) in enumerate(sets.items()):
        write_set(dest / name, photo, colour, kinds, side, seed, foreign_photo)
    return list(sets)


def write_textures(dest: Path, seed: int = 0) -> None:
    """OUTSIDE_CROPS random crops of OUTSIDE_CROP_SIDE pixels of each outside photograph, as PNG
    files in dest/<photograph>/ (colour where the photograph is)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    for name in OUTSIDE_PHOTOS:
        photo = getattr(data, name)()
        (dest / name).mkdir(parents=True)
        for index in range(OUTSIDE_CROPS):
            top, left = (
                rng.integers(0, extent - OUTSIDE_CROP_SIDE + 1) for extent in photo.shape[:2]
            )
            Image.fromarray(
                photo[top : top + OUTSIDE_CROP_SIDE, left : left + OUTSIDE_CROP_SIDE]
            ).save(dest / name / f"{index:02d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--side", type=int, default=64)
    args = parser.parse_args()
    print("wrote", ", ".join(write_sets(args.dest, args.side)), "in", args.dest)


if __name__ == "__main__":
    main()
