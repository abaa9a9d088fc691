"""Stage download: the dataset data.dataset names into data/raw/ as IDX files and classes.json.

MNIST and Fashion-MNIST are downloaded and verified by SHA-256; a folder of your own images
(data/images/, one subfolder per class or none) is converted and split into training and validation,
or, in the MVTec AD layout (train/good/, test/<kind>/, ground_truth/), converted with its own split
and its defect masks; with data.tile, each image (a scan of any size) is written as its tiles.
"""

import os

from aepipe.data.dataset import Classes, Split, write_dataset, write_scans
from aepipe.data.folder import (
    is_inspection_layout,
    read_folder,
    read_inspection_set,
    split_at_random,
)
from aepipe.data.mnist import DATASETS, download_dataset
from aepipe.data.tiles import Tiling
from aepipe.params import load_params
from aepipe.run_guard import run_guarded

IMAGES = "data/images"  # a dependency of this stage in dvc.yaml


def main() -> None:
    params = load_params("params.yaml")
    dataset, data = params.data.dataset, params.data
    tiling = Tiling(data.tile, data.tile_overlap) if data.tile else None
    if dataset == "folder" and is_inspection_layout(IMAGES):
        folder = params.data.folder
        found = read_inspection_set(
            IMAGES,
            data.side,
            data.channels,
            folder.val_fraction,
            folder.seed,
            folder.invert,
            tiled=bool(tiling),
        )
        write_prepared(
            found.train, found.val, found.classes, tiling, found.calibration, found.masks
        )
        return
    if dataset == "folder":
        folder = params.data.folder
        images, classes = read_folder(
            IMAGES, folder.invert, data.side, data.channels, tiled=bool(tiling)
        )
        train, val = split_at_random(images, folder.val_fraction, folder.seed)
        write_prepared(train, val, classes, tiling)
        return
    # a URL or a local directory, tried before params' mirrors
    mirror_env = DATASETS[dataset].mirror_env
    preferred = [os.environ[mirror_env]] if os.environ.get(mirror_env) else []
    download_dataset(
        "data/raw",
        preferred + params.download.mirrors.of(dataset),
        params.download.timeout_s,
        dataset,
    )


def write_prepared(
    train: Split, val: Split, classes: Classes, tiling: Tiling | None, *extras
) -> None:
    """data/raw: the images, or (data.tile) the tiles of the scans."""
    if tiling:
        write_scans("data/raw", train, val, classes, tiling, *extras)
    else:
        write_dataset("data/raw", train, val, classes, *extras)


if __name__ == "__main__":
    run_guarded(main)
