"""A folder of your own images as the dataset: reading it, and the whole pipeline on one."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aepipe.data.dataset import Classes, Split, load_classes, load_split, write_dataset
from aepipe.data.folder import read_folder, split_at_random
from aepipe.errors import AepipeError
from dvc_project import PNG_SIGNATURE, SMALL, copy_project, ran_stages, run

# folder names sort as one, seven, zero: labels 0, 1, 2
CLASS_DIGITS = {"one": 1, "seven": 7, "zero": 0}


def write_class_folders(raw_dir: Path, root: Path, per_class: int) -> dict[str, np.ndarray]:
    """Real MNIST training digits saved as PNGs, `per_class` of each digit in its class folder."""
    train = load_split(raw_dir, "train", 5000)
    written = {}
    for name, digit in CLASS_DIGITS.items():
        (root / name).mkdir(parents=True)
        written[name] = train.images[train.labels == digit][:per_class]
        for index, image in enumerate(written[name]):
            Image.fromarray(image).save(root / name / f"{index:04d}.png")
    return written


def test_class_folders_become_labelled_images_in_name_order(raw_dir, tmp_path):
    written = write_class_folders(raw_dir, tmp_path / "images", per_class=20)
    (tmp_path / "images" / "README.md").write_text("not an image: ignored")
    data, classes = read_folder(tmp_path / "images", invert=False, side=28, channels=1)
    assert classes == Classes(["one", "seven", "zero"], "class", labelled=True)
    assert np.bincount(data.labels).tolist() == [20, 20, 20]
    assert np.array_equal(data.images[data.labels == 1], written["seven"]), (
        "PNG is lossless: the very pixels"
    )
    inverted, _ = read_folder(tmp_path / "images", invert=True, side=28, channels=1)
    assert np.array_equal(inverted.images, 255 - data.images)


def test_a_flat_folder_is_one_unlabelled_class(raw_dir, tmp_path):
    images = load_split(raw_dir, "val", 12).images
    for index, image in enumerate(images):
        Image.fromarray(image).resize((56, 56)).save(tmp_path / f"scan{index:02d}.jpg", quality=95)
    data, classes = read_folder(tmp_path, invert=False, side=28, channels=1)
    assert not classes.labelled and classes.names == [tmp_path.name]
    assert data.images.shape == (12, 28, 28) and data.labels.tolist() == [0] * 12
    assert np.abs(data.images.astype(int) - images.astype(int)).mean() < 8, "resized back to 28×28"


@pytest.mark.parametrize(
    "layout, message",
    [
        (
            {"good/a.png": "digit", "good/broken.png": b"\x89PNG\r\n\x1a\n not really"},
            r"good/broken.png: not a readable image \(\w+\); expected a PNG, JPEG, TIFF, BMP or "
            r"WebP file",
        ),
        (
            {"good/a.png": "digit", "scratched/": None},
            r"scratched: empty class folder; expected PNG, JPEG, TIFF, BMP or WebP images in it",
        ),
        (
            {"good/a.png": "digit", "loose.png": "digit"},
            r"holds class subfolders and also images of its own \(loose.png\)",
        ),
        (
            {"notes.txt": b"no images"},
            r"no PNG, JPEG, TIFF, BMP or WebP images in it, and no class subfolders",
        ),
    ],
)
def test_a_bad_folder_is_refused_naming_what_is_wrong(tmp_path, layout, message):
    root = tmp_path / "images"
    root.mkdir()
    for name, content in layout.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        elif content == "digit":
            Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(path)
        else:
            path.write_bytes(content)
    with pytest.raises(AepipeError, match=message):
        read_folder(root, invert=False, side=28, channels=1)


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(AepipeError, match=r"no such folder; put your images there"):
        read_folder(tmp_path / "images", invert=False, side=28, channels=1)


def test_the_split_is_seeded_disjoint_and_complete():
    data = Split(
        np.arange(100, dtype=np.uint8)[:, None, None].repeat(28, 1).repeat(28, 2),
        np.zeros(100, dtype=np.uint8),
    )
    train, val = split_at_random(data, 0.2, seed=3)
    again, _ = split_at_random(data, 0.2, seed=3)
    other, _ = split_at_random(data, 0.2, seed=4)
    ids = lambda split: set(split.images[:, 0, 0].tolist())  # noqa: E731
    assert (
        len(val.labels) == 20
        and ids(train) | ids(val) == set(range(100))
        and not ids(train) & ids(val)
    )
    assert ids(train) == ids(again) and ids(train) != ids(other)
    with pytest.raises(
        AepipeError, match=r"data.folder.val_fraction = 0.001 of 100 images leaves 0 for validation"
    ):
        split_at_random(data, 0.001, seed=3)


def test_written_splits_read_back_as_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    train = Split(
        rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 3, 30, dtype=np.uint8)
    )
    val = Split(
        rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 3, 7, dtype=np.uint8)
    )
    classes = Classes(["a", "b", "c"], "class", labelled=True)
    write_dataset(tmp_path / "raw", train, val, classes)
    for split, expected in (("train", train), ("val", val)):
        loaded = load_split(tmp_path / "raw", split)
        assert np.array_equal(loaded.images, expected.images) and np.array_equal(
            loaded.labels, expected.labels
        )
    assert load_classes(tmp_path / "raw") == classes


# --- the pipeline on a folder
# ------------------------------------------------------------------------------

FOLDER_RUN = [*SMALL, "-S", "data.dataset=folder", "-S", "tsne.perplexity=10"]


@pytest.mark.pipeline
def test_the_pipeline_runs_on_class_folders_and_refuses_broken_ones(tmp_path, raw_dir):
    """Up to the stages that read the labels (the figures of a folder: the colour folder's test)."""
    project = copy_project(tmp_path)
    images = project / "data" / "images"
    write_class_folders(raw_dir, images, per_class=200)
    # label 0: the folder "one"
    one_class = ["-S", "data.normal_classes=[0]", "-S", "train.epochs=5"]
    result = run(["dvc", "exp", "run", *FOLDER_RUN, *one_class, "evaluate", "tsne"], project, None)
    assert {"download", "train", "evaluate", "tsne"} <= set(ran_stages(result.stdout))
    raw = project / "data" / "raw"
    assert load_classes(raw).names == ["one", "seven", "zero"]
    assert len(load_split(raw, "train").labels) == 480 and len(load_split(raw, "val").labels) == 120
    anomaly = json.loads((project / "reports" / "anomaly.json").read_text())
    assert anomaly["held_out_digits"]["anomalies"] == int(
        (load_split(raw, "val").labels != 0).sum()
    )
    # a model of ones reconstructs sevens and zeros worse
    assert anomaly["held_out_digits"]["roc_auc"] > 0.7
    assert (
        0.5
        < json.loads((project / "data" / "metrics" / "tsne.json").read_text())["tsne_knn10"]
        <= 1
    )

    kept = {
        path: path.read_bytes()
        for path in [project / "models" / "model.pt", *sorted((project / "plots").glob("*.png"))]
    }
    (images / "seven" / "0000.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short by a failed copy")
    failed = run(
        ["dvc", "exp", "run", *FOLDER_RUN, *one_class, "evaluate", "tsne"],
        project,
        None,
        check=False,
    )
    assert (
        failed.returncode != 0
        and "seven/0000.png: not a readable image" in failed.stdout + failed.stderr
    )
    assert ran_stages(failed.stdout) == ["check_params", "download"]
    assert {path: path.read_bytes() for path in kept} == kept, (
        "the last good run's outputs were touched"
    )
    assert not list((project / "data").glob(".raw*")), "a half-written data/raw was left behind"

    (images / "seven" / "0000.png").unlink()
    (images / "scratched").mkdir()
    failed = run(
        ["dvc", "exp", "run", *FOLDER_RUN, *one_class, "evaluate", "tsne"],
        project,
        None,
        check=False,
    )
    assert (
        failed.returncode != 0 and "scratched: empty class folder" in failed.stdout + failed.stderr
    )
    assert {path: path.read_bytes() for path in kept} == kept


def write_colour_images(raw_dir: Path, folder: Path, count: int) -> None:
    """MNIST digits in colours of their own (a random tint each), larger than 32×32; every tenth
    48×32."""
    tints = np.random.default_rng(0).uniform(0.3, 1.0, (count, 3))
    for index, (image, tint) in enumerate(
        zip(load_split(raw_dir, "train", count).images, tints, strict=True)
    ):
        picture = Image.fromarray((image[..., None] * tint).astype(np.uint8))
        picture.resize((48, 32) if index % 10 == 0 else (36, 36), Image.Resampling.BICUBIC).save(
            folder / f"{index:04d}.png"
        )


COLOUR_RUN = [
    *FOLDER_RUN,
    "-S",
    "data.folder.val_fraction=0.25",
    "-S",
    "data.side=32",
    "-S",
    "data.channels=3",
]


# Every stage that reads labels or draws the figures (export and publish do the same on any
# dataset).
COLOUR_STAGES = ["evaluate", "tsne", "interpolate", "denoise", "sample"]


@pytest.mark.pipeline
def test_a_colour_folder_without_classes_runs_at_its_side_without_label_metrics(tmp_path, raw_dir):
    project = copy_project(tmp_path)
    images = project / "data" / "images"
    write_colour_images(raw_dir, images, 300)
    result = run(["dvc", "exp", "run", *COLOUR_RUN, *COLOUR_STAGES], project, None)
    assert (
        "30 of 300 images in data/images are not square; each was stretched"
        in result.stdout + result.stderr
    )
    assert load_split(project / "data" / "raw", "train").images.shape == (225, 32, 32, 3)
    checkpoint = torch.load(project / "models" / "model.pt", weights_only=True)
    assert (checkpoint["side"], checkpoint["channels"]) == (32, 3)
    kept = np.load(project / "data" / "scores" / "most_anomalous.npz")
    assert kept["images"].shape == (16, 32, 32, 3) and kept["maps"].shape == (16, 32, 32)
    assert not load_classes(project / "data" / "raw").labelled
    assert json.loads((project / "data" / "metrics" / "tsne.json").read_text()) == {
        "tsne_knn10": None
    }
    report = json.loads((project / "reports" / "tsne.json").read_text())
    assert (
        report["points"] == 75
        and report["knn_accuracy_latent"] is None
        and "no classes" in report["knn_accuracy"]
    )
    assert "held_out_digits" not in json.loads((project / "reports" / "anomaly.json").read_text())
    assert (project / "plots" / "tsne.png").read_bytes().startswith(PNG_SIGNATURE)
    # Nothing to judge with either: no judge is trained, and what it would measure is null.
    assert json.loads((project / "data" / "metrics" / "judge.json").read_text()) == {
        "judge_accuracy": None
    }
    assert set(
        json.loads((project / "data" / "metrics" / "samples.json").read_text()).values()
    ) == {None}
    denoise = json.loads((project / "data" / "metrics" / "denoise.json").read_text())
    assert (
        denoise["noisy_acc"] is None
        and denoise["denoised_acc"] is None
        and denoise["psnr_gain"] is not None
    )
    assert np.load(project / "data" / "samples.npz")["images"].shape == (500, 32, 32, 3)
    for figure in ("samples", "denoising_curves"):
        assert (project / "plots" / f"{figure}.png").read_bytes().startswith(PNG_SIGNATURE)

    # MNIST's 10,000 validation images allow index 500; these 75 do not: the stage says so.
    model = (project / "models" / "model.pt").read_bytes()
    failed = run(
        ["dvc", "exp", "run", *COLOUR_RUN, "-S", "interpolate.end=500", "interpolate"],
        project,
        None,
        check=False,
    )
    assert failed.returncode != 0
    assert (
        "interpolate.end = 500: expected the index of a validation image, 0 to 74"
        in failed.stdout + failed.stderr
    )
    assert (project / "models" / "model.pt").read_bytes() == model

    # A folder without classes has one: data.normal_classes does not apply, and the model is the
    # same.
    run(["dvc", "exp", "run", *COLOUR_RUN, "-S", "data.normal_classes=[3]", "train"], project, None)
    assert (project / "models" / "model.pt").read_bytes() == model
