import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from aepipe.data.dataset import CLASSES_FILE, IdxFormatError, load_split, parse_idx
from aepipe.data.mnist import DATASETS, DownloadError, download_dataset, verify

MNIST_SHA256 = DATASETS["mnist"].sha256
# Class counts from the shared data's README.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
VAL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_download_from_local_directory_gives_verified_idx_files(raw_dir):
    assert sorted(path.name for path in raw_dir.iterdir()) == sorted(
        [*DATASETS["mnist"].sha256, CLASSES_FILE]
    )
    assert not list(raw_dir.parent.glob(".raw*")), "the staging directory was left behind"


def test_splits_parse_to_the_known_shapes_and_class_counts(raw_dir):
    train, val = load_split(raw_dir, "train"), load_split(raw_dir, "val")
    assert train.images.shape == (60_000, 28, 28) and train.images.dtype == np.uint8
    assert val.images.shape == (10_000, 28, 28)
    assert np.bincount(train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(val.labels).tolist() == VAL_COUNTS
    assert load_split(raw_dir, "val", limit=100).images.shape == (100, 28, 28)


def test_idx_with_wrong_magic_number_is_refused(raw_dir, tmp_path):
    labels = tmp_path / "labels"
    shutil.copy(raw_dir / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(IdxFormatError, match=r"magic number is 0x00000801, expected 0x00000803"):
        parse_idx(labels, 0x00000803)


def test_truncated_idx_is_refused(raw_dir, tmp_path):
    truncated = tmp_path / "images"
    truncated.write_bytes((raw_dir / "t10k-images-idx3-ubyte").read_bytes()[:-1])
    with pytest.raises(
        IdxFormatError, match=r"7840015 bytes, expected 7840016 for shape \(10000, 28, 28\)"
    ):
        parse_idx(truncated, 0x00000803)


def test_missing_idx_names_the_file(tmp_path):
    with pytest.raises(IdxFormatError, match="train-images-idx3-ubyte: file not found"):
        load_split(tmp_path, "train")


def test_verify_rejects_truncated_gzip(mnist_dir):
    compressed = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    assert verify(compressed, MNIST_SHA256["t10k-labels-idx1-ubyte"])[:4] == b"\x00\x00\x08\x01"
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        verify(compressed[: len(compressed) // 2], MNIST_SHA256["t10k-labels-idx1-ubyte"])


def test_verify_rejects_wrong_content_by_checksum(mnist_dir):
    content = bytearray(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    content[100] ^= 1
    with pytest.raises(DownloadError, match=f"expected {MNIST_SHA256['t10k-labels-idx1-ubyte']}"):
        verify(gzip.compress(bytes(content)), MNIST_SHA256["t10k-labels-idx1-ubyte"])


def test_download_over_http(mnist_dir, serve, tmp_path):
    dest = tmp_path / "data" / "raw"
    download_dataset(dest, [serve(mnist_dir)], timeout_s=5)
    assert load_split(dest, "val").labels.tolist()[:5] == [7, 2, 1, 0, 4]


def _corrupted_mirror(mnist_dir: Path, directory: Path) -> Path:
    """A copy of the mirror whose training images are cut short and whose val labels are gone."""
    directory.mkdir()
    for path in mnist_dir.glob("*.gz"):
        shutil.copy(path, directory / path.name)
    images = directory / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100_000])
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    return directory


def test_corrupted_http_mirror_fails_cleanly_naming_file_and_mirror(mnist_dir, serve, tmp_path):
    url = serve(_corrupted_mirror(mnist_dir, tmp_path / "bad"))
    dest = tmp_path / "data" / "raw"
    with pytest.raises(DownloadError) as failure:
        download_dataset(dest, [url], timeout_s=5)
    message = str(failure.value)
    assert "train-images-idx3-ubyte.gz" in message and url in message and "truncated" in message
    assert not dest.exists()
    assert not (tmp_path / "data").exists(), "a partial download was left behind"


def test_every_failing_mirror_is_listed_with_its_reason(serve, tmp_path):
    (tmp_path / "empty").mkdir()
    mirrors = [serve(tmp_path / "empty"), str(tmp_path / "nowhere"), "http://127.0.0.1:9/"]
    with pytest.raises(DownloadError) as failure:
        download_dataset(tmp_path / "raw", mirrors, timeout_s=5)
    lines = str(failure.value).splitlines()
    assert "train-images-idx3-ubyte.gz from any mirror" in lines[0]
    assert [line.split(": ", 1)[1] for line in lines[1:]][:2] == [
        "HTTP 404 File not found",
        "no such file",
    ]
    assert "unreachable" in lines[3]
    assert not (tmp_path / "raw").exists()


def test_next_mirror_is_tried_after_a_bad_one(mnist_dir, serve, tmp_path):
    bad = serve(_corrupted_mirror(mnist_dir, tmp_path / "bad"))
    dest = tmp_path / "raw"
    download_dataset(dest, [bad, serve(mnist_dir)], timeout_s=5)
    assert sorted(path.name for path in dest.iterdir()) == sorted(
        [*DATASETS["mnist"].sha256, CLASSES_FILE]
    )


# --- Fashion-MNIST: the same format, its own checksums
# ----------------------------------------------


def test_fashion_mnist_downloads_over_http_with_its_own_checksums(
    fashion_mnist_dir, serve, tmp_path
):
    dest = tmp_path / "raw"
    download_dataset(dest, [serve(fashion_mnist_dir)], timeout_s=5, dataset="fashion-mnist")
    train, val = load_split(dest, "train"), load_split(dest, "val")
    assert (
        np.bincount(train.labels).tolist() == [6000] * 10
        and np.bincount(val.labels).tolist() == [1000] * 10
    )
    assert train.images.shape == (60_000, 28, 28) and len(DATASETS["fashion-mnist"].classes) == 10


def test_mnist_files_served_as_fashion_mnist_are_refused(mnist_dir, serve, tmp_path):
    with pytest.raises(DownloadError) as failure:
        download_dataset(tmp_path / "raw", [serve(mnist_dir)], timeout_s=5, dataset="fashion-mnist")
    assert f"expected {DATASETS['fashion-mnist'].sha256['train-images-idx3-ubyte']}" in str(
        failure.value
    )
    assert not (tmp_path / "raw").exists()
