"""A folder of your own images as the dataset: one subfolder per class (torchvision's ImageFolder
layout), or the images directly in it, without labels."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aepipe.data.dataset import Classes, Split
from aepipe.data.images import (
    FORMATS,
    ImageFile,
    as_uint8,
    image_files,
    image_size,
    other_files,
    read_image,
)
from aepipe.errors import AepipeError

MAX_CLASSES = 10  # labels are the class params' 0-9, and the figures' colours


def read_folder(
    root: str | Path,
    invert: bool,
    side: int,
    channels: int,
    log: Callable[[str], None] = print,
    tiled: bool = False,
) -> tuple[Split, Classes]:
    """Every image under `root` as `channels` × `side` × `side` pixels (aepipe.data.images; inverted
    if `invert`), labelled by subfolder in name order; a refusal names the folder or file that is
    wrong, and `log` gets a note of every conversion that is not a plain resize. `tiled`: each image
    at its own size (at least side × side), the images an object array of arrays (`scans`)."""
    root = Path(root)
    if not root.is_dir():
        raise AepipeError(f"{root}: no such folder; put your images there, one subfolder per class")
    subfolders = sorted(
        path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    loose = image_files(root)
    if subfolders and loose:
        raise AepipeError(
            f"{root}: holds class subfolders and also images of its own ({loose[0].name}); "
            "expected one or the other"
        )
    if len(subfolders) > MAX_CLASSES:
        raise AepipeError(
            f"{root}: {len(subfolders)} class subfolders; expected at most {MAX_CLASSES}"
        )
    if subfolders:
        files_per_class = [image_files(folder) for folder in subfolders]
        for folder, files in zip(subfolders, files_per_class, strict=True):
            if not files:
                raise AepipeError(f"{folder}: empty class folder; expected {FORMATS} images in it")
        files = [file for files in files_per_class for file in files]
        labels = np.repeat(
            np.arange(len(subfolders), dtype=np.uint8), [len(files) for files in files_per_class]
        )
        classes = Classes([folder.name for folder in subfolders], "class", labelled=True)
    elif loose:
        files, labels = loose, np.zeros(len(loose), dtype=np.uint8)
        classes = Classes([root.name], "class", labelled=False)
    else:
        raise AepipeError(
            f"{root}: no {FORMATS} images in it, and no class subfolders holding them"
        )
    read = [read_image(file, side, channels, tiled=tiled) for file in files]
    _note_conversions(root, read, channels, log, tiled)
    images = scans([as_uint8(image.pixels) for image in read], tiled)
    return Split(255 - images if invert else images, labels), classes


def scans(images: list[np.ndarray], tiled: bool) -> np.ndarray:
    """The images as one array: stacked, or (`tiled`: each of its own size) an object array of
    them."""
    if not tiled:
        return np.stack(images)
    ragged = np.empty(len(images), dtype=object)
    # one by one: a list of arrays of one shape would be broadcast
    for place, image in enumerate(images):
        ragged[place] = image
    return ragged


def _note_conversions(
    root: Path,
    read: list[ImageFile],
    channels: int,
    log: Callable[[str], None],
    tiled: bool = False,
) -> None:
    """Say what was done to the images beyond resizing, and which files were left out."""
    stretched = 0 if tiled else sum(image.size[0] != image.size[1] for image in read)
    if stretched:
        log(
            f"note: {stretched} of {len(read)} images in {root} are not square; each was "
            "stretched to a square (its anomaly map is stretched back)"
        )
    converted = sum(image.colour != (channels == 3) for image in read)
    if converted:
        to = (
            "greyscale (data.channels = 1)"
            if channels == 1
            else "colour (data.channels = 3: grey in every channel)"
        )
        log(f"note: {converted} of {len(read)} images in {root} were converted to {to}")
    left_out = [
        file
        for folder in [root, *sorted(root.iterdir())]
        if folder.is_dir()
        for file in other_files(folder)
    ]
    if left_out:
        named = ", ".join(str(file.relative_to(root)) for file in left_out[:3])
        more = ", …" if len(left_out) > 3 else ""
        log(
            f"note: {len(left_out)} files under {root} are not {FORMATS} images and were left out "
            f"({named}{more})"
        )


def split_at_random(data: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """(training, validation): a seeded random share `val_fraction` of the images for validation,
    each part in the folder's order."""
    order = np.random.default_rng(seed).permutation(len(data.labels))
    n_val = round(len(order) * val_fraction)
    if not 1 <= n_val < len(order):
        raise AepipeError(
            f"data.folder.val_fraction = {val_fraction:g} of {len(order)} images leaves {n_val} "
            f"for validation and {len(order) - n_val} for training; expected at least one each"
        )
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return Split(data.images[train], data.labels[train]), Split(data.images[val], data.labels[val])


@dataclass(frozen=True)
class Outline:
    """What a folder dataset will hold, from its file names alone (check_params reads it before the
    download stage decodes a pixel)."""

    names: list[str]  # the classes by label
    inspection: bool
    labelled: bool
    val_images: int | None  # None where they are tiles (data.tile): counted once the scans are cut


def outline(root: str | Path, val_fraction: float, tiled: bool) -> Outline:
    """The classes and number of validation images of the folder dataset at `root` (read_folder's or
    read_inspection_set's), as its files say; a folder those would refuse is theirs to name."""
    root = Path(root)
    if is_inspection_layout(root):
        kinds = sorted(
            path.name for path in (root / "test").iterdir() if path.is_dir() and path.name != GOOD
        )
        held_out = root / VALIDATION / GOOD
        calibration = (
            len(image_files(held_out))
            if held_out.is_dir()
            else round(len(image_files(root / "train" / GOOD)) * val_fraction)
        )
        tested = sum(len(image_files(root / "test" / name)) for name in [GOOD, *kinds])
        return Outline([GOOD, *kinds], True, True, None if tiled else calibration + tested)
    subfolders = sorted(
        path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    count = sum(len(image_files(folder)) for folder in subfolders) + len(image_files(root))
    names = [folder.name for folder in subfolders] or [root.name]
    return Outline(names, False, bool(subfolders), None if tiled else round(count * val_fraction))


# --- the MVTec AD layout
# ----------------------------------------------------------------------------

GOOD = "good"  # MVTec AD's name of the normal images' folder, in train/ and test/
VALIDATION = "validation"  # MVTec AD 2's folder of good images held out of training: they calibrate


@dataclass(frozen=True)
class InspectionSet:
    """A dataset in the MVTec AD layout: train/good/ to learn from; validation images that are, in
    order, the calibration share of train/good, test/good and each test/<defect kind>/."""

    train: Split
    val: Split  # labels: 0 for good, then one per defect kind in name order
    classes: Classes
    # (N_val,) uint8: 1 for the images from train/good that set the threshold
    calibration: np.ndarray
    # (N_val, side, side) uint8, 255 in a defect; None without ground_truth/
    masks: np.ndarray | None


def is_inspection_layout(root: str | Path) -> bool:
    """MVTec AD's layout (and VisA's, anomalib's Folder's): train/good/ and test/."""
    root = Path(root)
    return (root / "train" / GOOD).is_dir() and (root / "test").is_dir()


def read_inspection_set(
    root: str | Path,
    side: int,
    channels: int,
    calibration_fraction: float,
    seed: int,
    invert: bool = False,
    log: Callable[[str], None] = print,
    tiled: bool = False,
) -> InspectionSet:
    """The MVTec AD layout under `root` (inverted if `invert`); masks from
    ground_truth/<kind>/<name>_mask.png when that folder exists (then every defect image needs one).
    validation/good/ (MVTec AD 2's layout) calibrates the threshold when it exists, and every image
    of train/good trains; otherwise a seeded random `calibration_fraction` of train/good calibrates
    instead of training. Either way no calibration image is trained on."""
    root = Path(root)
    kinds = _defect_kinds(root)
    good = _images_of(root / "train" / GOOD, side, channels, invert, log, tiled)
    if (root / VALIDATION / GOOD).is_dir():
        held_out = _images_of(root / VALIDATION / GOOD, side, channels, invert, log, tiled)
        train, calibration = (
            Split(good, np.zeros(len(good), np.uint8)),
            Split(held_out, np.zeros(len(held_out), np.uint8)),
        )
    else:
        train, calibration = split_at_random(
            Split(good, np.zeros(len(good), np.uint8)), calibration_fraction, seed
        )
    # label = place
    tested = [
        _images_of(root / "test" / name, side, channels, invert, log, tiled)
        for name in [GOOD, *kinds]
    ]
    labels = np.concatenate(
        [
            calibration.labels,
            *(np.full(len(images), label, np.uint8) for label, images in enumerate(tested)),
        ]
    )
    val = Split(np.concatenate([calibration.images, *tested]), labels)
    masks = _read_masks(root, kinds, side, tiled) if (root / "ground_truth").is_dir() else None
    if masks is not None:
        masks = _after_good_masks(masks, val.images[: len(val.labels) - len(masks)], tiled)
    calibration_flags = (np.arange(len(labels)) < len(calibration.labels)).astype(np.uint8)
    return InspectionSet(
        train,
        val,
        Classes([GOOD, *kinds], "defect", labelled=True, inspection=True),
        calibration_flags,
        masks,
    )


def _defect_kinds(root: Path) -> list[str]:
    """The defect kinds of an MVTec AD layout: test/'s folders besides good/, which must exist."""
    kinds = sorted(
        path.name
        for path in (root / "test").iterdir()
        if path.is_dir() and path.name != GOOD and not path.name.startswith(".")
    )
    if not kinds or not (root / "test" / GOOD).is_dir():
        raise AepipeError(
            f"{root / 'test'}: expected test/good/ (normal images that test the threshold) and "
            "one folder per defect kind; found "
            f"{', '.join(sorted(path.name for path in (root / 'test').iterdir())) or 'nothing'}"
        )
    if len(kinds) + 1 > MAX_CLASSES:
        raise AepipeError(
            f"{root / 'test'}: {len(kinds)} defect kinds; expected at most {MAX_CLASSES - 1}"
        )
    return kinds


def _after_good_masks(masks: np.ndarray, good_images, tiled: bool) -> np.ndarray:
    """The defect images' `masks` after the good images' (empty) ones."""
    good_masks = [np.zeros(image.shape[:2], np.uint8) for image in good_images]
    return np.concatenate([scans(good_masks, tiled) if good_masks else masks[:0], masks])


def _images_of(
    folder: Path,
    side: int,
    channels: int,
    invert: bool,
    log: Callable[[str], None],
    tiled: bool = False,
) -> np.ndarray:
    files = image_files(folder)
    if not files:
        raise AepipeError(f"{folder}: no {FORMATS} images in it; expected the images of this class")
    read = [read_image(file, side, channels, tiled=tiled) for file in files]
    _note_conversions(folder, read, channels, log, tiled)
    images = scans([as_uint8(image.pixels) for image in read], tiled)
    return 255 - images if invert else images


def _read_masks(root: Path, kinds: list[str], side: int, tiled: bool = False) -> np.ndarray:
    """Every defect image's mask, in the order of the images, at side × side (nearest: stays
    binary)."""
    masks = []
    for kind in kinds:
        images = image_files(root / "test" / kind)
        expected = {
            root / "ground_truth" / kind / f"{image.stem}_mask.png": image for image in images
        }
        found = (
            set(image_files(root / "ground_truth" / kind))
            if (root / "ground_truth" / kind).is_dir()
            else set()
        )
        for mask in sorted(found - set(expected)):
            raise AepipeError(
                f"{mask}: a mask without an image; expected "
                f"test/{kind}/{mask.stem.removesuffix('_mask')}.png"
            )
        for mask, image in expected.items():
            if mask not in found:
                raise AepipeError(
                    f"{image}: no mask; expected {mask} (every defect image needs one when "
                    "ground_truth/ exists)"
                )
            masks.append(_read_mask(mask, image, side, tiled))
    return scans(masks, tiled)


def _read_mask(mask: Path, image: Path, side: int, tiled: bool) -> np.ndarray:
    expected, read = image_size(image), read_image(mask, side, channels=1, tiled=tiled)
    if read.size != expected:
        raise AepipeError(
            f"{mask}: {read.size[0]}×{read.size[1]} pixels, but its image {image.name} is "
            f"{expected[0]}×{expected[1]}; expected the same size"
        )
    return np.where(as_uint8(read.pixels) > 127, 255, 0).astype(np.uint8)
