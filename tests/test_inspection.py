"""Inspection sets in the MVTec AD layout: reading them with their masks, the localisation metrics,
and the whole pipeline on a small colour one."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aepipe.anomaly.detection import aupro
from aepipe.data.dataset import load_classes, load_inspection_extras, load_split
from aepipe.data.folder import is_inspection_layout, read_inspection_set
from aepipe.deploy.onnx_detector import OnnxDetector
from aepipe.errors import AepipeError
from aepipe.figures.plots import most_anomalous
from dvc_project import ALL_STAGES, FIGURES, PNG_SIGNATURE, copy_project, ran_stages, run

KINDS = {"scratch": 0, "stain": 1}  # defect kind → its channel (a stain is a colour-only change)


def texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A regular colour texture (stripes at a random phase) with a little noise: uint8 (side, side,
    3)."""
    rows = np.arange(side)[:, None] + rng.integers(0, 8)
    stripes = 0.5 + 0.4 * np.sin(2 * np.pi * rows / 8) * np.ones((1, side))
    image = np.stack([stripes, stripes * 0.8, 0.3 + 0 * stripes], axis=-1) + rng.normal(
        0, 0.02, (side, side, 3)
    )
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_inspection_set(root: Path, good: int = 60, tested: int = 8, side: int = 40) -> None:
    """train/good, test/good and two defect kinds with their masks, as MVTec AD lays them out."""
    rng = np.random.default_rng(0)
    for folder, count in (("train/good", good), ("test/good", tested)):
        (root / folder).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(texture(rng, side)).save(root / folder / f"{index:03d}.png")
    for kind, channel in KINDS.items():
        (root / "test" / kind).mkdir(parents=True)
        (root / "ground_truth" / kind).mkdir(parents=True)
        for index in range(tested):
            image, mask = texture(rng, side), np.zeros((side, side), np.uint8)
            top, left = rng.integers(4, side - 16, 2)
            mask[top : top + 12, left : left + 12] = 255
            image[mask > 0, channel] = 255 - image[mask > 0, channel]
            Image.fromarray(image).save(root / "test" / kind / f"{index:03d}.png")
            Image.fromarray(mask).save(root / "ground_truth" / kind / f"{index:03d}_mask.png")


def test_the_mvtec_layout_gives_its_split_kinds_and_masks(tmp_path):
    write_inspection_set(tmp_path)
    assert is_inspection_layout(tmp_path) and not is_inspection_layout(tmp_path / "test")
    found = read_inspection_set(
        tmp_path, side=32, channels=3, calibration_fraction=0.25, seed=0, log=lambda _: None
    )
    assert found.classes.names == ["good", "scratch", "stain"] and found.classes.inspection
    assert found.train.images.shape == (45, 32, 32, 3) and set(found.train.labels) == {0}
    assert found.val.labels.tolist() == [0] * 15 + [0] * 8 + [1] * 8 + [2] * 8
    assert found.calibration.tolist() == [1] * 15 + [0] * 24, (
        "the calibration share of train/good comes first"
    )
    assert found.masks.shape == (39, 32, 32) and not found.masks[:23].any()
    expected = np.asarray(Image.open(tmp_path / "ground_truth" / "stain" / "003_mask.png")) > 0
    resized = found.masks[23 + 8 + 3] > 0
    assert abs(resized.mean() - expected.mean()) < 0.02 and set(np.unique(found.masks)) == {0, 255}
    inverted = read_inspection_set(
        tmp_path,
        side=32,
        channels=3,
        calibration_fraction=0.25,
        seed=0,
        invert=True,
        log=lambda _: None,
    )
    assert np.array_equal(inverted.val.images, 255 - found.val.images) and np.array_equal(
        inverted.masks, found.masks
    )


def test_validation_good_calibrates_and_all_of_train_good_trains(tmp_path):
    """MVTec AD 2's layout: good images held out of training, that calibrate the threshold."""
    write_inspection_set(tmp_path)
    (tmp_path / "validation" / "good").mkdir(parents=True)
    held_out = [texture(np.random.default_rng(7 + index), 40) for index in range(6)]
    for index, image in enumerate(held_out):
        Image.fromarray(image).save(tmp_path / "validation" / "good" / f"{index:03d}.png")
    found = read_inspection_set(
        tmp_path, side=40, channels=3, calibration_fraction=0.25, seed=0, log=lambda _: None
    )
    assert found.train.images.shape == (60, 40, 40, 3), "no share of train/good is held out"
    assert (
        found.calibration.tolist() == [1] * 6 + [0] * 24
        and found.val.labels.tolist()[:6] == [0] * 6
    )
    assert np.array_equal(found.val.images[:6], np.stack(held_out))
    trained = {image.tobytes() for image in found.train.images}
    assert not any(image.tobytes() in trained for image in found.val.images[:6]), (
        "no calibration image is trained on"
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda root: (root / "ground_truth/stain/003_mask.png").unlink(),
            r"stain/003.png: no mask; expected .*003_mask.png",
        ),
        (
            lambda root: Image.new("L", (40, 40)).save(root / "ground_truth/stain/099_mask.png"),
            r"099_mask.png: a mask without an image; expected test/stain/099.png",
        ),
        (
            lambda root: Image.new("L", (48, 40)).save(root / "ground_truth/stain/003_mask.png"),
            r"003_mask.png: 48×40 pixels, but its image 003.png is 40×40; expected the same size",
        ),
        (
            lambda root: Image.new("L", (20, 20)).save(root / "test/good/small.png"),
            r"small.png: 20×20 pixels is smaller than the 32×32 the model takes",
        ),
        (
            lambda root: (root / "test/good").rename(root / "test/ok"),
            r"test: expected test/good/ \(normal images that test the threshold\) and one folder "
            r"per defect kind; found ok, scratch, stain",
        ),
    ],
)
def test_a_broken_inspection_set_is_refused_naming_the_file(tmp_path, damage, message):
    write_inspection_set(tmp_path, good=8, tested=4)
    damage(tmp_path)
    with pytest.raises(AepipeError, match=message):
        read_inspection_set(
            tmp_path, side=32, channels=3, calibration_fraction=0.25, seed=0, log=lambda _: None
        )


def brute_force_aupro(maps: np.ndarray, masks: np.ndarray, limit: float) -> float:
    """The definition read literally: per threshold, the mean overlap of every region and the
    false-positive rate of the pixels outside them; the curve integrated up to `limit`."""
    from scipy.ndimage import label

    regions = [
        (index, labelled == region)
        for index, mask in enumerate(masks)
        for labelled, count in [label(mask, np.ones((3, 3)))]
        for region in range(1, count + 1)
    ]
    points = [(0.0, 0.0)]
    for threshold in np.unique(maps)[::-1]:
        flagged = maps >= threshold
        points.append(
            (
                flagged[~masks].mean(),
                np.mean([flagged[index][region].mean() for index, region in regions]),
            )
        )
    fpr, pro = np.array(points).T
    inside = fpr <= limit
    return float(
        np.trapezoid(np.r_[pro[inside], np.interp(limit, fpr, pro)], np.r_[fpr[inside], limit])
        / limit
    )


def test_aupro_is_the_region_overlap_curve_up_to_30_percent_false_positives():
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 12, 12), bool)
    # regions of different sizes
    masks[0, 1:3, 1:3] = masks[0, 6:11, 5:11] = masks[1, 4:6, 4:9] = True
    maps = np.round(rng.random(masks.shape) + 0.6 * masks, 2)  # ties too
    assert aupro(maps, masks) == pytest.approx(brute_force_aupro(maps, masks, 0.3), abs=1e-12)
    assert aupro(masks.astype(float), masks) == pytest.approx(1.0)
    small_region_missed = maps.copy()
    small_region_missed[0, 1:3, 1:3] = 0
    assert aupro(small_region_missed, masks) < aupro(maps, masks) - 0.2, (
        "a small region weighs as much as a large one"
    )


def test_a_diagonal_scratch_is_one_region_as_anomalib_counts_it():
    masks = np.zeros((2, 12, 12), bool)
    masks[0, np.arange(10), np.arange(10)] = True  # its pixels touch at their corners only
    masks[1, 2:5, 2:5] = True
    maps = np.zeros(masks.shape)
    maps[0, np.arange(5), np.arange(5)] = maps[1, 2:5, 2:5] = 1.0
    # Two regions, half of one found and all of the other: an overlap of 0.75 with no false
    # positive, 1 with all of them (0.825 at 30 %); as ten regions of one pixel it would be 6/11 at
    # first.
    assert aupro(maps, masks) == pytest.approx((0.75 + 0.825) / 2)


# The README's inspection command (at 32 px, not 64), with nothing of MNIST's to override: only
# what makes it quick (a share of train/good calibrates; few epochs; 500 samples; Barnes-Hut t-SNE).
INSPECTION_SET = [
    "-S",
    "data.dataset=folder",
    "-S",
    "data.side=32",
    "-S",
    "data.channels=3",
    "-S",
    "data.folder.val_fraction=0.25",
    "-S",
    "train.epochs=10",
    "-S",
    "train.batch_size=16",
    "-S",
    "sample.count=500",
    "-S",
    "tsne.method=bh",
]


@pytest.mark.pipeline
def test_the_pipeline_on_an_inspection_set_reports_each_kind_and_locates_defects(tmp_path):
    project = copy_project(tmp_path)
    write_inspection_set(project / "data" / "images")
    refused = run(
        ["dvc", "exp", "run", *INSPECTION_SET, "-S", "data.normal_classes=[0,1]"],
        project,
        None,
        check=False,
    )
    assert (
        "data.normal_classes = [0, 1]: data/images has the MVTec AD layout, whose normal class is "
        "good" in refused.stdout + refused.stderr
    )
    assert ran_stages(refused.stdout) == ["check_params"], (
        "refused before the download stage reads a pixel"
    )
    run(["git", "checkout", "params.yaml"], project, None)  # what `make restore-params` does
    result = run(["dvc", "exp", "run", *INSPECTION_SET], project, None)
    assert set(ran_stages(result.stdout)) == set(ALL_STAGES)
    assert all(
        (project / "plots" / f"{figure}.png").read_bytes().startswith(PNG_SIGNATURE)
        for figure in FIGURES
    )
    tsne = json.loads((project / "reports" / "tsne.json").read_text())
    assert tsne["points"] == 39 and tsne["knn_accuracy_2d"] is not None
    raw = project / "data" / "raw"
    assert load_classes(raw).names == ["good", "scratch", "stain"]
    assert load_split(raw, "val").images.shape == (39, 32, 32, 3)
    assert load_inspection_extras(raw)[1].shape == (39, 32, 32)
    report = json.loads((project / "reports" / "anomaly.json").read_text())
    assert set(report["held_out_by_class"]) == {"scratch", "stain"}
    assert report["normal_test_images"] == 8, (
        "test/good tests the threshold; train/good's share calibrates it"
    )
    localisation = report["localisation"]
    assert 0.5 < localisation["pixel_roc_auc"] <= 1 and 0 <= localisation["aupro"] <= 1
    metrics = json.loads((project / "data" / "metrics" / "anomaly.json").read_text())
    assert (
        metrics["auc_defect_pixels"] == localisation["pixel_roc_auc"]
        and metrics["aupro"] == localisation["aupro"]
    )
    assert metrics["auc_stain"] == report["held_out_by_class"]["stain"]["roc_auc"]
    judge = json.loads((project / "reports" / "judge.json").read_text())
    assert judge["judge"].startswith("does not apply") and "metrics" not in judge
    assert json.loads((project / "data" / "metrics" / "judge.json").read_text()) == {
        "judge_accuracy": None
    }

    # The default score of an inspection set is the peak of the blurred map, drawn by the defect
    # segmenter trained with the model: the threshold is per pixel too, and aepipe score --maps
    # writes each image's defect mask at its own size.
    assert report["score"] == "map_max"
    trained = json.loads((project / "reports" / "train.json").read_text())
    assert trained["segmenter_epochs"] == 10 and trained["segmenter_seconds"] > 0
    # Its map's blur is chosen on synthetic defects in the calibration images
    # (aepipe.anomaly.blur_choice), and every later stage reads the one chosen.
    choice = localisation["map_sigma_choice"]
    assert choice["roc_auc"][str(choice["sigma"])] == max(choice["roc_auc"].values())
    roles = pd.read_csv(project / "data" / "scores" / "val_images.csv")["role"]
    assert (
        choice["clean_images"] + choice["defective_images"] == (roles == "calibration").sum() == 15
    )
    # dvc exp show tells runs apart by it
    assert localisation["map_sigma"] == choice["sigma"] == metrics["map_sigma"]
    threshold = json.loads((project / "reports" / "threshold.json").read_text())
    assert threshold["per_pixel"] == {
        "threshold": threshold["per_image"]["threshold"],
        "kind": "segmenter",
        "sigma": choice["sigma"],
    }
    assert_the_maps_kept_are_the_detectors(project, "segmenter")
    assert_masks_written_and_scored_alike(project, tmp_path, choice["sigma"])
    assert_calibrated_on_site(project, tmp_path)


def assert_the_maps_kept_are_the_detectors(project: Path, kind: str) -> None:
    """The most anomalous images' maps (the evaluate stage's figure) are the ones the detector
    scores by, blurred: not the raw map of their kind."""
    import torch

    from aepipe.anomaly.detector import Detector
    from aepipe.anomaly.maps import anomaly_maps
    from aepipe.anomaly.scores import FittedScore
    from aepipe.model.autoencoder import load_model

    kept = np.load(project / "data" / "scores" / "most_anomalous.npz")
    model = load_model(project / "models" / "model.pt")
    fitted = FittedScore.from_dict(
        json.loads((project / "models" / "anomaly_score.json").read_text())
    )
    images = torch.from_numpy(kept["images"]).permute(0, 3, 1, 2).contiguous()
    assert str(kept["map_kind"]) == kind and fitted.maps.sigma > 0
    np.testing.assert_allclose(
        kept["maps"], Detector(model, fitted).score(images, with_maps=True).maps, atol=1e-6
    )
    assert np.abs(kept["maps"] - anomaly_maps(model, images, kind).numpy()).max() > 1e-3


def assert_masks_written_and_scored_alike(project: Path, tmp_path: Path, sigma: float) -> None:
    """aepipe score --maps writes a defect's mask at the image's size; the exported detector (colour
    32×32, map_max on the segmenter's map) flags and masks alike."""
    maps = tmp_path / "maps"
    scored = run(
        [
            str(Path(sys.executable).parent / "aepipe"),
            "score",
            "--maps",
            str(maps),
            str(project / "data" / "images" / "test" / "scratch" / "000.png"),
        ],
        project,
        None,
    )
    assert scored.stdout.splitlines()[0] == "source,score,flagged,dead_frame,error"
    mask = np.asarray(Image.open(maps / "0000-000_mask.png"))
    assert mask.shape == (40, 40) and set(np.unique(mask)) <= {0, 255}
    flagged = scored.stdout.splitlines()[1].split(",")[2] == "true"
    assert flagged == bool(mask.any()), "an image is flagged exactly when its mask has a pixel"

    # The exported detector: colour 32×32, the map_max score on the segmenter's map.
    assert_detector_matches(project, f"map_max on the segmenter map blurred by {sigma:g} px", 1e-5)
    by_detector = run(
        [
            str(Path(sys.executable).parent / "aepipe"),
            "score",
            "--maps",
            str(tmp_path / "onnx-maps"),
            "--onnx",
            "models/detector.onnx",
            str(project / "data" / "images" / "test" / "scratch" / "000.png"),
        ],
        project,
        None,
    )
    assert (
        by_detector.stdout.splitlines()[1].split(",")[2]
        == scored.stdout.splitlines()[1].split(",")[2]
    )
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "onnx-maps" / "0000-000_mask.png")), mask
    )


def assert_calibrated_on_site(project: Path, tmp_path: Path) -> None:
    """`aepipe calibrate` on the colour detector: 100 good parts from the line for a 10 % target;
    the new file flags by its new threshold, with the source detector's scores."""
    rng = np.random.default_rng(11)
    np.save(tmp_path / "line.npy", np.stack([texture(rng, 32) for _ in range(100)]))
    out = tmp_path / "detector-line.onnx"
    run(
        [
            str(Path(sys.executable).parent / "aepipe"),
            "calibrate",
            str(tmp_path / "line.npy"),
            "--false-alarms",
            "0.1",
            "--onnx",
            "models/detector.onnx",
            "--out",
            str(out),
        ],
        project,
        None,
    )
    original, calibrated = OnnxDetector(project / "models" / "detector.onnx"), OnnxDetector(out)
    others = (
        np.stack([texture(rng, 32) for _ in range(50)]).transpose(0, 3, 1, 2).astype(np.float32)
        / 255
    )
    scores, flagged, _, _ = calibrated(others)
    assert (
        np.array_equal(scores, original(others)[0])
        and flagged.tolist() == (scores > calibrated.threshold).tolist()
    )
    assert (
        json.loads(calibrated.metadata["calibration"])["images"] == 100
        and calibrated.metadata["channels"] == "3"
    )


def assert_detector_matches(project: Path, score: str, tolerance: float) -> None:
    """The export stage's report: a 32×32 colour detector of this score, whose scores and maps are
    the pipeline's within `tolerance`, and whose flags all are."""
    export = json.loads((project / "reports" / "export.json").read_text())
    assert export["export_max_rel_diff"] <= tolerance and export["max_map_diff"] <= tolerance
    assert export["export_flags_differ"] == 0
    assert (
        export["metadata"]["side"],
        export["metadata"]["channels"],
        export["metadata"]["score"],
    ) == ("32", "3", score)


def test_the_most_anomalous_figure_names_the_map_it_shows():
    images, maps = np.zeros((2, 8, 8)), np.zeros((2, 8, 8))
    args = (
        images,
        maps,
        np.array([2.0, 1.0]),
        np.array([1, 0]),
        np.array([False, True]),
        1.5,
        "map_max",
        ["good", "stain"],
    )
    assert "|image − reconstruction|" in most_anomalous(*args)._suptitle.get_text(), (
        "the error map, by default"
    )
    assert (
        "the defect segmenter's probability"
        in most_anomalous(*args, "defect", "segmenter")._suptitle.get_text()
    )
