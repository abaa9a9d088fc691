"""MNIST and Fashion-MNIST: download from mirrors with checksum verification; any images written in
the same layout (IDX files and the class names); and the IDX files parsed into arrays."""

import gzip
import hashlib
import http.client
import json
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aepipe.atomic import DIR_MODE
from aepipe.errors import AepipeError

@dataclass(frozen=True)
class IdxDataset:
    """An image dataset published as MNIST is: four gzipped IDX files, 28×28 greyscale, ten classes."""

    sha256: dict[str, str]  # of each file's decompressed content: the same for every mirror, however it compressed
    classes: tuple[str, ...]  # class names, by label
    label_noun: str  # what a label is called in figures
    mirror_env: str  # environment variable naming a mirror (URL or local directory) tried first


DATASETS = {
    "mnist": IdxDataset(
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        classes=tuple("0123456789"),
        label_noun="digit",
        mirror_env="AEPIPE_MNIST_MIRROR",
    ),
    "fashion-mnist": IdxDataset(
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        label_noun="class",
        mirror_env="AEPIPE_FASHION_MNIST_MIRROR",
    ),
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES_FILE = "classes.json"  # beside the IDX files: the names of the labels
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class DownloadError(AepipeError):
    pass


class IdxFormatError(AepipeError):
    pass


# --- download -------------------------------------------------------------------------------


def download_dataset(dest: str | Path, mirrors: list[str], timeout_s: float, dataset: str = "mnist") -> None:
    """Fetch the four files of `dataset` (a key of DATASETS) into directory `dest`, decompressed and
    verified, with its CLASSES_FILE.

    Each mirror is a base URL (http, https, file) or a local directory holding the `.gz` files;
    they are tried in order for each file. `dest` appears complete or not at all.
    """
    known = DATASETS[dataset]
    files = {name: _fetch_verified(name, sha256, mirrors, timeout_s) for name, sha256 in known.sha256.items()}
    replace_dir(dest, {**files, CLASSES_FILE: Classes(list(known.classes), known.label_noun, labelled=True).to_json()})


def write_dataset(dest: str | Path, train: "Split", val: "Split", classes: "Classes") -> None:
    """Write splits of any 28×28 greyscale images as `dest` in the layout download_dataset gives."""
    files = {}
    for split, data in (("train", train), ("val", val)):
        images_name, labels_name = SPLIT_FILES[split]
        files[images_name] = encode_idx(data.images, IMAGES_MAGIC)
        files[labels_name] = encode_idx(data.labels, LABELS_MAGIC)
    replace_dir(dest, {**files, CLASSES_FILE: classes.to_json()})


def replace_dir(dest: str | Path, files: dict[str, bytes]) -> None:
    """Make directory `dest` hold exactly `files` (name → content): all of them or, on failure, what it held before."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        staging.chmod(DIR_MODE)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch_verified(name: str, sha256: str, mirrors: list[str], timeout_s: float) -> bytes:
    failures = []
    for mirror in mirrors:
        try:
            return verify(_read_from_mirror(mirror, f"{name}.gz", timeout_s), sha256)
        except (DownloadError, OSError, http.client.HTTPException) as error:
            failures.append(f"  {_join_mirror(mirror, name + '.gz')}: {_reason(error)}")
    raise DownloadError(f"could not get a valid {name}.gz from any mirror:\n" + "\n".join(failures))


def _read_from_mirror(mirror: str, filename: str, timeout_s: float) -> bytes:
    location = _join_mirror(mirror, filename)
    if "://" not in mirror:
        return Path(location).read_bytes()
    with urllib.request.urlopen(location, timeout=timeout_s) as response:
        return response.read()


def verify(compressed: bytes, sha256: str) -> bytes:
    """Decompress one downloaded `.gz` and check its SHA-256; return the IDX bytes."""
    try:
        content = gzip.decompress(compressed)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DownloadError(f"not a complete gzip file ({error}); truncated or corrupt download") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        raise DownloadError(f"SHA-256 of the decompressed content is {digest}, expected {sha256}")
    return content


def _join_mirror(mirror: str, filename: str) -> str:
    return mirror.rstrip("/") + "/" + filename


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return "timed out" if isinstance(error.reason, TimeoutError) else f"unreachable ({error.reason})"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed after {len(error.partial)} bytes, {error.expected} more expected"
    return str(error)


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classes:
    """What the labels of a prepared dataset mean."""

    names: list[str]  # by label
    noun: str  # what a label is called in figures: digit, class
    labelled: bool  # False: a folder of images without classes; every label is 0

    def to_json(self) -> bytes:
        return (json.dumps({"names": self.names, "noun": self.noun, "labelled": self.labelled}, indent=2) + "\n").encode()


def load_classes(raw_dir: str | Path) -> Classes:
    path = Path(raw_dir) / CLASSES_FILE
    try:
        saved = json.loads(path.read_text())
        return Classes(list(saved["names"]), saved["noun"], saved["labelled"])
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: file not found; run the download stage first") from None
    except (ValueError, KeyError, TypeError):
        raise IdxFormatError(f"{path}: not a classes file written by the download stage") from None


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8

    def only_digits(self, digits: list[int]) -> "Split":
        keep = np.isin(self.labels, digits)
        return Split(self.images[keep], self.labels[keep])


def load_split(raw_dir: str | Path, split: str, limit: int | None = None) -> Split:
    """Read one split ('train' or 'val') from the decompressed IDX files in `raw_dir`."""
    images_name, labels_name = SPLIT_FILES[split]
    images = parse_idx(Path(raw_dir) / images_name, IMAGES_MAGIC)
    labels = parse_idx(Path(raw_dir) / labels_name, LABELS_MAGIC)
    if len(images) != len(labels):
        raise IdxFormatError(f"{split}: {len(images)} images but {len(labels)} labels")
    return Split(images[:limit], labels[:limit])


def encode_idx(array: np.ndarray, magic: int) -> bytes:
    """The IDX bytes of an unsigned-byte array: big-endian magic, one uint32 per dimension, the values."""
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def parse_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file (big-endian header: magic, then one uint32 per dimension)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: file not found; run the download stage first") from None
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise IdxFormatError(f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"{path}: header of {ndim} dimensions is truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise IdxFormatError(f"{path}: {len(data)} bytes, expected {expected_size} for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)
