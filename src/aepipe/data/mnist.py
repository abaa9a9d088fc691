"""MNIST and Fashion-MNIST: their files, downloaded from mirrors with checksum verification into the
layout of aepipe.data.dataset."""

import gzip
import hashlib
import http.client
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from aepipe.atomic import replace_dir
from aepipe.data.dataset import CLASSES_FILE, Classes
from aepipe.errors import AepipeError


@dataclass(frozen=True)
class IdxDataset:
    """An image dataset published as MNIST is: four gzipped IDX files, 28×28 greyscale, ten
    classes."""

    # of each file's decompressed content: the same for every mirror, however it compressed
    sha256: dict[str, str]
    classes: tuple[str, ...]  # class names, by label
    label_noun: str  # what a label is called in figures
    mirror_env: str  # environment variable naming a mirror (URL or local directory) tried first


DATASETS = {
    "mnist": IdxDataset(
        sha256={
            "train-images-idx3-ubyte": (
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
            ),
            "train-labels-idx1-ubyte": (
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
            ),
            "t10k-images-idx3-ubyte": (
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
            ),
            "t10k-labels-idx1-ubyte": (
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
            ),
        },
        classes=tuple("0123456789"),
        label_noun="digit",
        mirror_env="AEPIPE_MNIST_MIRROR",
    ),
    "fashion-mnist": IdxDataset(
        sha256={
            "train-images-idx3-ubyte": (
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
            ),
            "train-labels-idx1-ubyte": (
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
            ),
            "t10k-images-idx3-ubyte": (
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
            ),
            "t10k-labels-idx1-ubyte": (
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
            ),
        },
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        label_noun="class",
        mirror_env="AEPIPE_FASHION_MNIST_MIRROR",
    ),
}


class DownloadError(AepipeError):
    pass


def download_dataset(
    dest: str | Path, mirrors: list[str], timeout_s: float, dataset: str = "mnist"
) -> None:
    """Fetch the four files of `dataset` (a key of DATASETS) into directory `dest`, decompressed and
    verified, with its CLASSES_FILE.

    Each mirror is a base URL (http, https, file) or a local directory holding the `.gz` files;
    they are tried in order for each file. `dest` appears complete or not at all.
    """
    known = DATASETS[dataset]
    files = {
        name: _fetch_verified(name, sha256, mirrors, timeout_s)
        for name, sha256 in known.sha256.items()
    }
    replace_dir(
        dest,
        {
            **files,
            CLASSES_FILE: Classes(list(known.classes), known.label_noun, labelled=True).to_json(),
        },
    )


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
        raise DownloadError(
            f"not a complete gzip file ({error}); truncated or corrupt download"
        ) from None
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
        return (
            "timed out"
            if isinstance(error.reason, TimeoutError)
            else f"unreachable ({error.reason})"
        )
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed after {len(error.partial)} bytes, {error.expected} more expected"
    return str(error)
