"""A folder of your own images as the dataset: one subfolder per class (torchvision's ImageFolder
layout), or the images directly in it, without labels."""

from pathlib import Path

import numpy as np

from aepipe.dataset import Classes, Split
from aepipe.errors import AepipeError
from aepipe.images import image_files, read_greyscale

MAX_CLASSES = 10  # labels are the class params' 0-9, and the figures' colours


def read_folder(root: str | Path, invert: bool) -> tuple[Split, Classes]:
    """Every image under `root` as 28×28 greyscale (dark-on-light ones inverted if `invert`), labelled
    by subfolder in name order; a refusal names the folder or file that is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise AepipeError(f"{root}: no such folder; put your images there, one subfolder per class")
    subfolders = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    loose = image_files(root)
    if subfolders and loose:
        raise AepipeError(f"{root}: holds class subfolders and also images of its own ({loose[0].name}); "
                          "expected one or the other")
    if len(subfolders) > MAX_CLASSES:
        raise AepipeError(f"{root}: {len(subfolders)} class subfolders; expected at most {MAX_CLASSES}")
    if subfolders:
        files_per_class = [image_files(folder) for folder in subfolders]
        for folder, files in zip(subfolders, files_per_class):
            if not files:
                raise AepipeError(f"{folder}: empty class folder; expected PNG or JPEG images in it")
        files = [file for files in files_per_class for file in files]
        labels = np.repeat(np.arange(len(subfolders), dtype=np.uint8), [len(files) for files in files_per_class])
        classes = Classes([folder.name for folder in subfolders], "class", labelled=True)
    elif loose:
        files, labels = loose, np.zeros(len(loose), dtype=np.uint8)
        classes = Classes([root.name], "class", labelled=False)
    else:
        raise AepipeError(f"{root}: no PNG or JPEG images in it, and no class subfolders holding them")
    images = np.stack([read_greyscale(file) for file in files])
    return Split(255 - images if invert else images, labels), classes


def split_at_random(data: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """(training, validation): a seeded random share `val_fraction` of the images for validation, each
    part in the folder's order."""
    order = np.random.default_rng(seed).permutation(len(data.labels))
    n_val = round(len(order) * val_fraction)
    if not 1 <= n_val < len(order):
        raise AepipeError(f"data.folder.val_fraction = {val_fraction:g} of {len(order)} images leaves "
                          f"{n_val} for validation and {len(order) - n_val} for training; expected at least one each")
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return Split(data.images[train], data.labels[train]), Split(data.images[val], data.labels[val])
