"""What `aepipe score` and `aepipe calibrate` score with: the pipeline's own files (the model, its
fitted score and threshold, in torch) or the exported detector (onnxruntime, no torch), each checked
against the files it was made with. A scan (a model of tiles, data.tile) is scored through its
tiles: their maps stitched into the scan's (aepipe.data.tiles), its score their peak."""

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aepipe.anomaly.threshold_report import ThresholdReport
from aepipe.anomaly.verdicts import Scores
from aepipe.atomic import file_sha256
from aepipe.data.tiles import Tiling
from aepipe.deploy.inputs import Input
from aepipe.errors import AepipeError

REFERENCE = "models/reference.json"  # the torch path's reference by default (the export stage's)


@dataclass(frozen=True)
class Scorer:
    """What scores: the images it takes (channels × side × side) and `score(images, with_maps)` of
    (N, channels, side, side) float32 images in [0, 1]; with `tiling`, those are tiles of scans of
    any size (`score_images`). `reads_map`: the score is the map's peak, and the map shows the
    defect's mask."""

    side: int
    channels: int
    score: Callable[[np.ndarray, bool], Scores]
    threshold: float
    reads_map: bool
    tiling: Tiling | None = None
    workers: int = 1  # batches scored side by side (aepipe score)
    # what the detector carries for the drift watch (aepipe.anomaly.drift)
    reference: str | None = None
    model_sha256: str = ""  # of the model it was made from: what a reference is made for
    # the files it was built from, by role (`scorer_of_files`): what a Dask worker rebuilds it from
    files: dict[str, Path] = field(default_factory=dict)
    method: str = ""  # the anomaly score (anomaly.score)

    def score_images(self, images: list[np.ndarray], with_maps: bool) -> Scores:
        """(side, side) or (side, side, 3) images, or (tiling) scans of any size, each at least one
        tile."""
        if self.tiling is None:
            return self.score(channels_first(np.stack(images)), with_maps)
        sizes = [image.shape[:2] for image in images]
        tiles = self.score(
            channels_first(np.concatenate([self.tiling.cut(image) for image in images])), True
        )
        scans = Scores.stitched(self.tiling, tiles, sizes, self.threshold)
        return scans if with_maps else scans.without_maps()


def score_readable(batch: list[Input], scorer: Scorer, with_maps: bool) -> Scores | None:
    """The scores of the batch's images that could be read (None when none could)."""
    good = [item.pixels for item in batch if item.error is None]
    return scorer.score_images(good, with_maps) if good else None


def channels_first(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) → (N, C, H, W)."""
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def scorer_of_files(files: dict[str, Path]) -> Scorer:
    """The scorer of these files, by their role: an exported detector (`onnx`), or the pipeline's
    `model` with its fitted `score` and `threshold`."""
    if "onnx" in files:
        return detector_scorer(files["onnx"])
    return model_scorer(files["model"], files["score"], files["threshold"])


def model_scorer(model_path: Path, score_path: Path, threshold_path: Path) -> Scorer:
    """The pipeline's own files: the model, the fitted score and the threshold, scored with
    torch."""
    import torch

    from aepipe.anomaly.detector import Detector
    from aepipe.model.autoencoder import describe_training, load_model

    fitted = read_score(score_path, model_path)
    threshold = read_threshold(threshold_path, model_path, score_path)
    model = load_model(model_path)
    # it reconstructs noisy images well by design: noise alone scores lower than with a plain one
    if model.noise_std:
        print(f"note: {model_path} is a {describe_training(model)}", file=sys.stderr)

    detector = Detector(model, fitted, threshold)

    def score(images: np.ndarray, with_maps: bool) -> Scores:
        return detector.score(torch.from_numpy(np.ascontiguousarray(images)), with_maps)

    return Scorer(
        model.side,
        model.channels,
        score,
        threshold,
        fitted.maps is not None,
        fitted.tiling,
        model_sha256=file_sha256(model_path),
        files={"model": model_path, "score": score_path, "threshold": threshold_path},
        method=fitted.method,
    )


def detector_scorer(path: Path) -> Scorer:
    """The exported detector alone (aepipe.deploy.onnx_detector: onnxruntime, no torch)."""
    from aepipe.deploy.onnx_detector import OnnxDetector

    detector = OnnxDetector(path, threads=1)
    reads_map = detector.metadata["score"].startswith("map_max")

    def score(images: np.ndarray, with_maps: bool) -> Scores:
        scores, flagged, maps, dead, *latents = detector.run(images)
        return Scores(
            scores, flagged, dead, maps if with_maps else None, latents=next(iter(latents), None)
        )

    return Scorer(
        detector.side,
        detector.channels,
        score,
        detector.threshold,
        reads_map,
        detector.tiling,
        scoring_workers(),
        detector.reference if detector.latent_output else None,
        detector.metadata["model_sha256"],
        {"onnx": path},
        detector.metadata["score"],
    )


def scoring_workers() -> int:
    """Batches a detector scores at a time, each on one thread: one per core this process may use
    (the files are decoded on a thread beside them, in the time a core waits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def read_score(path: Path, model_path: Path):
    """The anomaly score fitted by the score stage (a FittedScore), checked against the model
    file."""
    from aepipe.anomaly.scores import FittedScore

    try:
        saved = json.loads(path.read_text())
        fitted, model_sha256 = FittedScore.from_dict(saved), saved["model_sha256"]
    except FileNotFoundError:
        raise AepipeError(
            f"{path}: anomaly score file not found; run `dvc repro score` first"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise AepipeError(f"{path}: not an anomaly score file written by the score stage") from None
    check_made_for(
        path,
        "model",
        model_sha256,
        model_path,
        "rerun `dvc repro score`, or pass the matching --model",
    )
    return fitted


def read_threshold(path: Path, model_path: Path, score_path: Path) -> float:
    """The per-image threshold from the threshold stage's report, checked against the model and
    score files."""
    report = ThresholdReport.read(path)
    check_made_for(
        path,
        "model",
        report.model_sha256,
        model_path,
        "rerun `dvc repro threshold`, or pass the matching --model",
    )
    check_made_for(
        path,
        "anomaly score",
        report.score_sha256,
        score_path,
        "rerun `dvc repro threshold`, or pass the matching --score",
    )
    return report.threshold


def torch_path_reference(
    threshold: Path, model: Path, reference: Path | None
) -> tuple[Path, str | None]:
    """The torch path's drift reference and the file it came from: `reference`; else the one a
    threshold file of `aepipe calibrate` carries; else the export stage's REFERENCE (None where it
    wrote none). Checked against the model it was made for."""
    carried = ThresholdReport.read(threshold).reference
    path = reference or (threshold if carried else Path(REFERENCE))
    if not path.is_file():
        return path, None
    saved = carried if path == threshold else json.loads(path.read_text())
    if "none" in saved:
        return path, None
    check_made_for(
        path,
        "model",
        saved["model_sha256"],
        model,
        "rerun `dvc repro export`, or pass the matching --reference",
    )
    return path, json.dumps(saved)


def check_made_for(path: Path, what: str, expected_sha256: str, used: Path, advice: str) -> None:
    if used.is_file() and file_sha256(used) != expected_sha256:
        raise AepipeError(
            f"{path} was computed for another {what} (sha256 {expected_sha256[:12]}…), not "
            f"{used}; {advice}"
        )
