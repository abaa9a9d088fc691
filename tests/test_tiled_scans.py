"""The pipeline on scans of mixed sizes at full resolution (data.tile): trained on tiles, each scan
scored through its tiles, its map stitched at its own size, and the detector of tiles scoring a
scan as the pipeline does."""

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import label

from aepipe.data.dataset import load_split, load_tiles
from aepipe.deploy.onnx_detector import OnnxDetector
from dvc_project import SMALL, copy_project, ran_stages, run
from test_inspection import KINDS, texture

SIZES = [(64, 80), (72, 96), (96, 96)]  # (height, width) of the scans, in turn
TILED = [
    *SMALL,
    "-S",
    "data.dataset=folder",
    "-S",
    "data.channels=3",
    "-S",
    "data.side=32",
    "-S",
    "data.tile=32",
    "-S",
    "data.tile_overlap=8",
    "-S",
    "data.val_size=null",
    "-S",
    "data.normal_classes=[0]",
    "-S",
    "data.folder.val_fraction=0.25",
    "-S",
    "train.epochs=4",
    "-S",
    "train.batch_size=16",
]


def scan(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return texture(rng, max(height, width))[:height, :width].copy()


def write_scans(root: Path, good: int = 24, tested: int = 4) -> None:
    """An inspection set of scans of mixed sizes; each defect an 8×8 square across the border of the
    first two tiles (at 24 to 32, where they overlap) or elsewhere."""
    rng = np.random.default_rng(0)
    for folder, count in (("train/good", good), ("test/good", tested)):
        (root / folder).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(scan(rng, *SIZES[index % 3])).save(root / folder / f"{index:03d}.png")
    for kind, channel in KINDS.items():
        (root / "test" / kind).mkdir(parents=True)
        (root / "ground_truth" / kind).mkdir(parents=True)
        for index in range(tested):
            height, width = SIZES[index % 3]
            image, mask = scan(rng, height, width), np.zeros((height, width), np.uint8)
            top, left = (20, 20) if index == 0 else (height - 14, width - 14)
            mask[top : top + 8, left : left + 8] = 255
            image[mask > 0, channel] = 255 - image[mask > 0, channel]
            Image.fromarray(image).save(root / "test" / kind / f"{index:03d}.png")
            Image.fromarray(mask).save(root / "ground_truth" / kind / f"{index:03d}_mask.png")


def aepipe(project: Path, *args: str) -> str:
    return run(
        [str(Path(sys.executable).parent / "aepipe"), *args], project, None, check=False
    ).stdout


@pytest.mark.pipeline
def test_scans_of_mixed_sizes_are_trained_on_tiles_and_scored_whole(tmp_path):
    project = copy_project(tmp_path)
    write_scans(project / "data" / "images")
    result = run(["dvc", "exp", "run", *TILED, "evaluate", "export"], project, None)
    assert {"download", "train", "score", "evaluate", "export"} <= set(ran_stages(result.stdout))
    raw = project / "data" / "raw"
    tiles = load_tiles(raw)
    assert (tiles.tiling.tile, tiles.tiling.overlap) == (32, 8) and len(
        tiles.sizes["val"]
    ) == 6 + 4 + 8
    assert load_split(raw, "val").images.shape == (
        sum(tiles.tiling.count(*size) for size in tiles.sizes["val"]),
        32,
        32,
        3,
    )
    images = pd.read_csv(project / "data" / "scores" / "val_images.csv")
    assert len(images) == 18 and images["role"].value_counts().to_dict() == {
        "held_out": 8,
        "calibration": 6,
        "test": 4,
    }
    report = json.loads((project / "reports" / "anomaly.json").read_text())
    assert report["score"] == "map_max" and set(report["held_out_by_class"]) == set(KINDS)
    assert 0.5 < report["localisation"]["pixel_roc_auc"] <= 1
    export = json.loads((project / "reports" / "export.json").read_text())
    assert (
        export["export_max_rel_diff"] <= 1e-5
        and export["max_map_diff"] <= 1e-5
        and export["export_flags_differ"] == 0
    )
    assert (export["metadata"]["tile"], export["metadata"]["overlap"]) == ("32", "8")
    reference = json.loads((project / "models" / "reference.json").read_text())
    codes = np.frombuffer(base64.b64decode(reference["latents"]), "<f4")
    assert len(codes) == 6 * reference["latent_dim"], "each calibration scan's code"
    assert_scored_whole_at_their_size(project, tmp_path)
    assert_calibrated_on_site(project, tmp_path)
    # The same scans resized instead: the dataset is made again (download reads data.tile).
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("tile: 32", "tile: null"))
    assert "data.tile" in run(["dvc", "status", "download"], project, None).stdout


def assert_scored_whole_at_their_size(project: Path, tmp_path: Path) -> None:
    """`aepipe score` (torch and the detector) on the defect across a tile border and a scan too
    small."""
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 28, 3), np.uint8)).save(small)
    defect = project / "data" / "images" / "test" / "stain" / "000.png"
    by_model = aepipe(project, "score", "--maps", str(tmp_path / "maps"), str(defect), str(small))
    by_detector = aepipe(
        project,
        "score",
        "--onnx",
        "models/detector.onnx",
        "--maps",
        str(tmp_path / "onnx"),
        str(defect),
    )
    model_row, small_row = by_model.splitlines()[1].split(","), by_model.splitlines()[2]
    assert "small.png: 28×40 pixels is smaller than one 32×32 tile (data.tile)" in small_row
    detector_row = by_detector.splitlines()[1].split(",")
    assert (
        abs(float(model_row[1]) - float(detector_row[1])) <= 1e-5 * abs(float(model_row[1]))
        and model_row[2] == detector_row[2]
    )
    for folder in ("maps", "onnx"):
        stitched = np.asarray(Image.open(tmp_path / folder / "0000-000_map.png"))
        assert stitched.shape == (64, 80), "the map at the scan's own size"
    mask = np.asarray(Image.open(tmp_path / "maps" / "0000-000_mask.png")) > 0
    assert mask.shape == (64, 80) and (model_row[2] == "true") == mask.any()
    # Found once: one region of the mask where the defect lies across the tiles' border.
    truth = (
        np.asarray(Image.open(defect.parents[2] / "ground_truth" / "stain" / "000_mask.png")) > 0
    )
    regions, _ = label(mask, structure=np.ones((3, 3)))
    assert len(set(np.unique(regions[truth])) - {0}) == 1


def assert_calibrated_on_site(project: Path, tmp_path: Path) -> None:
    """`aepipe calibrate` on 160 good scans of the line: the new detector still scores scans through
    its tiles, and watches the line's next scans against them, scan by scan (each its tiles' mean
    latent code): the same light quiet, a brighter one declared drifted."""
    line = write_line(tmp_path / "line", 160, seed=5)
    out = tmp_path / "detector-line.onnx"
    aepipe(
        project,
        "calibrate",
        str(line),
        "--false-alarms",
        "0.1",
        "--onnx",
        "models/detector.onnx",
        "--out",
        str(out),
    )
    rows = pd.read_csv(io.StringIO(aepipe(project, "score", "--onnx", str(out), str(line))))
    calibrated = json.loads(OnnxDetector(out).metadata["calibration"])
    assert (OnnxDetector(out).metadata["tile"], calibrated["images"]) == ("32", 160)
    assert rows["flagged"].sum() == calibrated["false_alarms"], (
        "the scans it was calibrated on, flagged by its threshold"
    )
    for name, brighter, drift in (("same", 0, {False}), ("brighter", 60, {True})):
        scans = write_line(tmp_path / name, 64, seed=6, brighter=brighter)
        log = tmp_path / f"{name}.drift.csv"
        said = run(
            [str(Path(sys.executable).parent / "aepipe"), "score", "--onnx", str(out)]
            + [str(scans), "--watch-batch", "32", "--drift-log", str(log)],
            project,
            None,
            check=False,
        )
        watched = pd.read_csv(log)
        assert len(watched) == 2 and set(watched["drift"]) == drift, said.stderr


def write_line(folder: Path, count: int, seed: int, brighter: int = 0) -> Path:
    """`count` good scans of the line, of the three sizes in turn, `brighter` grey levels up."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = scan(rng, *SIZES[index % 3]).astype(np.int16) + brighter
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index:03d}.png")
    return folder
