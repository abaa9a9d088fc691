"""A prepared dataset on disk, whatever its source (MNIST, Fashion-MNIST, a folder of your own): the
IDX files of both splits and the names of the labels, written all at once and parsed back into
arrays."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aepipe.atomic import replace_dir
from aepipe.data.tiles import Tiling
from aepipe.errors import AepipeError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES_FILE = "classes.json"  # beside the IDX files: the names of the labels
# An inspection set's (the MVTec AD layout) validation images also have these: 1 for an image that
# calibrates the threshold; each image's defect mask (255 in the defect).
CALIBRATION_FILE = "t10k-calibration-idx1-ubyte"
MASKS_FILE = "t10k-masks-idx3-ubyte"
# a tiled dataset's (data.tile): the tiling, and the size of each scan the tiles are from
TILES_FILE = "tiles.json"
UNSIGNED_BYTES = 0x00000800  # an IDX magic number is this plus the number of dimensions
IMAGES_MAGIC = UNSIGNED_BYTES + 3  # (N, H, W): greyscale
COLOUR_IMAGES_MAGIC = UNSIGNED_BYTES + 4  # (N, H, W, 3)
LABELS_MAGIC = UNSIGNED_BYTES + 1


class IdxFormatError(AepipeError):
    pass


def write_dataset(
    dest: str | Path,
    train: "Split",
    val: "Split",
    classes: "Classes",
    calibration: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    tiles: "TiledScans | None" = None,
) -> None:
    """Write splits of images of any shape, (N, H, W) or (N, H, W, 3), as `dest` in the layout
    aepipe.data.mnist.download_dataset gives too; `tiles`: the images are tiles of these scans."""
    files = {TILES_FILE: tiles.to_json()} if tiles else {}
    for split, data in (("train", train), ("val", val)):
        images_name, labels_name = SPLIT_FILES[split]
        files[images_name] = encode_idx(data.images, UNSIGNED_BYTES + data.images.ndim)
        files[labels_name] = encode_idx(data.labels, LABELS_MAGIC)
    if calibration is not None:
        files[CALIBRATION_FILE] = encode_idx(calibration, LABELS_MAGIC)
    if masks is not None:
        files[MASKS_FILE] = encode_idx(masks, IMAGES_MAGIC)
    replace_dir(dest, {**files, CLASSES_FILE: classes.to_json()})


@dataclass(frozen=True)
class Classes:
    """What the labels of a prepared dataset mean."""

    names: list[str]  # by label
    noun: str  # what a label is called in figures: digit, class
    labelled: bool  # False: a folder of images without classes; every label is 0
    inspection: bool = False  # the MVTec AD layout: label 0 is good, the others defect kinds

    def to_json(self) -> bytes:
        saved = {"names": self.names, "noun": self.noun, "labelled": self.labelled}
        return (
            json.dumps(saved | ({"inspection": True} if self.inspection else {}), indent=2) + "\n"
        ).encode()


def load_classes(raw_dir: str | Path) -> Classes:
    path = Path(raw_dir) / CLASSES_FILE
    try:
        saved = json.loads(path.read_text())
        return Classes(
            list(saved["names"]), saved["noun"], saved["labelled"], saved.get("inspection", False)
        )
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: file not found; run the download stage first") from None
    except (ValueError, KeyError, TypeError):
        raise IdxFormatError(f"{path}: not a classes file written by the download stage") from None


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, H, W), or (N, H, W, 3) in colour
    labels: np.ndarray  # (N,) uint8

    def only_digits(self, digits: list[int]) -> "Split":
        keep = np.isin(self.labels, digits)
        return self if keep.all() else Split(self.images[keep], self.labels[keep])


def load_split(raw_dir: str | Path, split: str, limit: int | None = None) -> Split:
    """Read one split ('train' or 'val') from the decompressed IDX files in `raw_dir`."""
    images_name, labels_name = SPLIT_FILES[split]
    images = parse_idx(Path(raw_dir) / images_name, IMAGES_MAGIC, COLOUR_IMAGES_MAGIC)
    labels = parse_idx(Path(raw_dir) / labels_name, LABELS_MAGIC)
    if len(images) != len(labels):
        raise IdxFormatError(f"{split}: {len(images)} images but {len(labels)} labels")
    return Split(images[:limit], labels[:limit])


def load_inspection_extras(
    raw_dir: str | Path, limit: int | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(calibration flags, defect masks) of the first `limit` validation images; each None where the
    dataset has none."""
    paths = Path(raw_dir) / CALIBRATION_FILE, Path(raw_dir) / MASKS_FILE
    calibration = parse_idx(paths[0], LABELS_MAGIC)[:limit] if paths[0].exists() else None
    masks = parse_idx(paths[1], IMAGES_MAGIC)[:limit] if paths[1].exists() else None
    return calibration, masks


def encode_idx(array: np.ndarray, magic: int) -> bytes:
    """The IDX bytes of an unsigned-byte array: big-endian magic, one uint32 per dimension, the
    values."""
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def parse_idx(path: Path, expected_magic: int, other_magic: int | None = None) -> np.ndarray:
    """Parse an unsigned-byte IDX file (big-endian header: magic, then one uint32 per dimension)
    into a writable array over the file's bytes, so that nothing copies a large image set again."""
    try:
        data = _read_writable(path)
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: file not found; run the download stage first") from None
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (expected_magic, other_magic):
        other = f" or 0x{other_magic:08x}" if other_magic else ""
        raise IdxFormatError(
            f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}{other}"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"{path}: header of {ndim} dimensions is truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise IdxFormatError(
            f"{path}: {len(data)} bytes, expected {expected_size} for shape {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _read_writable(path: Path) -> bytearray:
    with path.open("rb") as file:
        data = bytearray(path.stat().st_size)
        file.readinto(data)
    return data


@dataclass(frozen=True)
class TiledScans:
    """How a tiled dataset's tiles were cut: each split's images are the tiles of its scans, in
    order."""

    tiling: Tiling
    sizes: dict[str, list[tuple[int, int]]]  # split → each scan's (height, width)

    def to_json(self) -> bytes:
        saved = {"tile": self.tiling.tile, "overlap": self.tiling.overlap, "sizes": self.sizes}
        return (json.dumps(saved) + "\n").encode()

    def maps(self, split: str, tiles: np.ndarray) -> list[np.ndarray]:
        """Each scan's map (or pixels), stitched from its tiles' in `tiles`."""
        return self.tiling.stitch_all(tiles, self.sizes[split])

    def scan_of_each_tile(self, split: str) -> np.ndarray:
        return self.tiling.scan_of_each_tile(self.sizes[split])

    def first_tiles(self, split: str) -> np.ndarray:
        """The index of each scan's first tile: where its label and calibration flag are read."""
        return np.r_[
            0, np.cumsum([self.tiling.count(*size) for size in self.sizes[split]])[:-1]
        ].astype(int)

    def tiles_of(self, split: str, scans: np.ndarray) -> np.ndarray:
        """The tiles of these scans, in order."""
        return np.flatnonzero(np.isin(self.scan_of_each_tile(split), scans))

    def peak_tile(self, split: str, scan: int, scan_map: np.ndarray) -> int:
        """The tile of scan `scan` that holds the peak of its stitched map."""
        top, left = np.unravel_index(np.argmax(scan_map), scan_map.shape)
        tile = self.tiling.tile
        place = next(
            place
            for place, (row, column) in enumerate(self.tiling.corners(*scan_map.shape))
            if row <= top < row + tile and column <= left < column + tile
        )
        return int(self.tiles_of(split, np.array([scan]))[place])


def tiled(
    scans: np.ndarray, labels: np.ndarray, tiling: Tiling
) -> tuple[Split, list[tuple[int, int]]]:
    """The tiles of scans (an object array, aepipe.data.folder.scans), each labelled as its scan;
    and the scans' (height, width)s."""
    tiles = [tiling.cut(scan) for scan in scans]
    return Split(np.concatenate(tiles), np.repeat(labels, [len(part) for part in tiles])), [
        scan.shape[:2] for scan in scans
    ]


def load_tiles(raw_dir: str | Path) -> TiledScans | None:
    """A tiled dataset's TILES_FILE; None for a dataset of whole images."""
    path = Path(raw_dir) / TILES_FILE
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return TiledScans(
        Tiling(saved["tile"], saved["overlap"]),
        {split: [tuple(size) for size in sizes] for split, sizes in saved["sizes"].items()},
    )


def write_scans(
    dest: str | Path,
    train: Split,
    val: Split,
    classes: Classes,
    tiling: Tiling,
    calibration: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> None:
    """write_dataset of scans of any size (object arrays, aepipe.data.folder.scans) as their tiles,
    each with its scan's label, calibration flag and part of the mask."""
    train_tiles, train_sizes = tiled(train.images, train.labels, tiling)
    val_tiles, val_sizes = tiled(val.images, val.labels, tiling)
    if calibration is not None:
        calibration = np.repeat(calibration, [tiling.count(*size) for size in val_sizes])
    if masks is not None:
        masks = np.concatenate([tiling.cut(mask) for mask in masks])
    write_dataset(
        dest,
        train_tiles,
        val_tiles,
        classes,
        calibration,
        masks,
        TiledScans(tiling, {"train": train_sizes, "val": val_sizes}),
    )
