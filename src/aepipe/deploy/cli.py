"""The `aepipe` command: score your own images with a trained model, its anomaly score and threshold.

    aepipe score PATH... [--model models/model.pt] [--score models/anomaly_score.json]
                         [--threshold reports/threshold.json] [--out FILE] [--maps DIR] [--invert]
    aepipe score PATH... --onnx models/detector.onnx [--out FILE] [--maps DIR] [--invert]

--onnx scores with the exported detector instead (the export stage's: the model, score and threshold
in one file), with onnxruntime and without torch: the same CSV, maps and refusals.

PATH: PNG or JPEG files, folders of them (not recursive), or .npy arrays of images of the model's
shape (channels × side × side: 1×28×28 for MNIST). Image files are converted to it: greyscale or
colour as the model takes, resized (Lanczos), a non-square one stretched (README: "Your own
images"); for MNIST's models light strokes on a dark background (--invert for dark ink on light
paper). A .npy array may hold uint8 pixels (0–255) or floats in [0, 1], shaped (side, side),
(N, side, side) or (N, 1, side, side) for greyscale, (N, side, side, 3) or (N, 3, side, side) for colour.
Writes CSV: source, score (the pipeline's anomaly.score: reconstruction MSE, or the combined
score), flagged (score > threshold, or a dead frame), dead_frame (blank, saturated or one flat
colour: flagged whatever the score). --maps DIR also writes two PNGs per image into DIR: the image
beside its anomaly map (|image - reconstruction| per pixel, in colour over the image), and the map
alone at the image's own size (`*_map.png`, 0–255 for an error of 0–1); with the map_max score, the
map it scores (anomaly.map, blurred) and the defect's mask, its pixels above the threshold (`*_mask.png`)
"""

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Only what scoring with an exported detector needs: torch is imported where the model is used.
from aepipe.atomic import atomic_path, file_sha256
from aepipe.anomaly.detection import decisive_scores
from aepipe.errors import AepipeError, exit_on_error
from aepipe.data.images import load_images
from aepipe.figures.overlay import write_maps



def main(argv: list[str] | None = None) -> None:
    exit_on_error(lambda: run(argv))


def run(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="aepipe", description="Anomaly scores from a trained aepipe autoencoder.")
    commands = parser.add_subparsers(dest="command", required=True)
    scorer = argparse.ArgumentParser(add_help=False)  # what both commands score with
    scorer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    scorer.add_argument("--model", type=Path, default=Path("models/model.pt"))
    scorer.add_argument("--score", type=Path, default=Path("models/anomaly_score.json"),
                        help="the anomaly score's fitted statistics, written by the losses stage")
    scorer.add_argument("--threshold", type=Path, default=Path("reports/threshold.json"))
    scorer.add_argument("--onnx", type=Path, metavar="DETECTOR",
                        help="score with this exported detector (models/detector.onnx) instead: onnxruntime, no torch")
    scorer.add_argument("--invert", action="store_true", help="invert greyscale (dark digits on a light background)")
    score = commands.add_parser("score", parents=[scorer], help="score images; flag those above the per-image threshold",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    score.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    score.add_argument("--maps", type=Path, metavar="DIR", help="write each image's anomaly map as a PNG into DIR")
    calibrate = commands.add_parser("calibrate", parents=[scorer], help=CALIBRATE_HELP, description=CALIBRATE_HELP)
    calibrate.add_argument("--false-alarms", type=float, required=True, metavar="SHARE",
                           help="the share of good parts to flag, e.g. 0.01")
    calibrate.add_argument("--out", type=Path, required=True,
                           help="the new detector (.onnx, with --onnx) or threshold file (.json, for aepipe score --threshold)")
    args = parser.parse_args(argv)
    (score_command if args.command == "score" else calibrate_command)(args)


CALIBRATE_HELP = ("set the threshold on site from known-good images of the line (PATH...): a copy of the detector "
                  "(--onnx) or a threshold file that flags --false-alarms of good parts, without retraining")


def score_command(args: argparse.Namespace) -> None:
    if args.maps and args.maps.exists() and not args.maps.is_dir():
        raise AepipeError(f"--maps {args.maps}: not a folder; expected a folder to write the PNG maps into")
    scored = score_with_detector(args) if args.onnx else score_with_model(args)
    if args.maps:
        write_maps(args.maps, scored.sources, scored.images, scored.sizes, scored.maps, scored.masks)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["source", "score", "flagged", "dead_frame"])
    writer.writerows((source, f"{score:.6g}", str(bool(flag)).lower(), str(bool(dead)).lower())
                     for source, score, flag, dead in zip(scored.sources, scored.scores, scored.flagged, scored.dead))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(table.getvalue())
    else:
        sys.stdout.write(table.getvalue())


def calibrate_command(args: argparse.Namespace) -> None:
    """Score the good images, set the threshold for the target, write the new detector or threshold file."""
    from aepipe.anomaly.site_calibration import site_threshold, write_detector, write_threshold_file

    args.maps = None
    scored = score_with_detector(args) if args.onnx else score_with_model(args)
    calibration = site_threshold(scored.scores, scored.dead, scored.sources, args.false_alarms, scored.images)
    if args.onnx:
        write_detector(args.onnx, calibration, args.out)
    else:
        write_threshold_file(args.threshold, args.model, args.score, read_score(args.score, args.model).method,
                             calibration, args.out)
    low, high = calibration["interval"]
    print(f"{args.out}: threshold {calibration['threshold']:.6g} from {calibration['images']:,} good images, "
          f"{calibration['false_alarms']} of them above it; false alarms on new good parts of this line: "
          f"{low:.1%}–{high:.1%} (95 %)")


@dataclass(frozen=True)
class Scored:
    """Images read and scored: each one's source, pixels (as load_images gives them), own size, score,
    flag, anomaly map and whether it is a dead frame; the defect masks where the score reads the map
    (map_max), else None."""

    sources: list[str]
    images: np.ndarray
    sizes: list[tuple[int, int]]
    scores: np.ndarray
    flagged: np.ndarray
    maps: np.ndarray
    masks: np.ndarray | None
    dead: np.ndarray


def read_inputs(args: argparse.Namespace, side: int, channels: int) -> tuple[list[str], np.ndarray, list[tuple[int, int]]]:
    sources, images, sizes = load_images(args.paths, side, channels)
    return sources, (1 - images if args.invert else images), sizes


def score_with_model(args: argparse.Namespace) -> Scored:
    """The pipeline's own files: the model, the fitted score and the threshold, scored with torch."""
    import torch

    from aepipe.devices import to_tensor
    from aepipe.model.autoencoder import describe_training, load_model
    from aepipe.anomaly.scores import image_features, score_maps

    fitted = read_score(args.score, args.model)
    threshold = read_threshold(args.threshold, args.model, args.score)
    model = load_model(args.model)
    if model.noise_std:  # it reconstructs noisy images well by design: noise alone scores lower than with a plain one
        print(f"note: {args.model} is a {describe_training(model)}", file=sys.stderr)
    sources, images, sizes = read_inputs(args, model.side, model.channels)
    pixels = to_tensor(images, torch.device("cpu"))
    features = image_features(model, pixels, fitted.maps)
    scores, dead = fitted.score(features), fitted.dead_frames(features)
    maps = score_maps(model, pixels, fitted).numpy() if args.maps else None
    masks = maps > threshold if maps is not None and fitted.maps else None
    return Scored(sources, images, sizes, scores, decisive_scores(scores, dead) > threshold, maps, masks, dead)


def score_with_detector(args: argparse.Namespace) -> Scored:
    """The exported detector alone (aepipe.deploy.serve: onnxruntime, no torch)."""
    from aepipe.deploy.serve import OnnxDetector

    detector = OnnxDetector(args.onnx)
    sources, images, sizes = read_inputs(args, detector.side, detector.channels)
    channels_first = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    scores, flagged, maps, dead = detector(channels_first)
    masks = maps > detector.threshold if detector.metadata["score"].startswith("map_max") else None
    return Scored(sources, images, sizes, scores, flagged, maps, masks, dead)


def read_score(path: Path, model_path: Path):
    """The anomaly score fitted by the losses stage (a FittedScore), checked against the model file."""
    from aepipe.anomaly.scores import FittedScore

    try:
        saved = json.loads(path.read_text())
        fitted, model_sha256 = FittedScore.from_dict(saved), saved["model_sha256"]
    except FileNotFoundError:
        raise AepipeError(f"{path}: anomaly score file not found; run `dvc repro losses` first") from None
    except (ValueError, KeyError, TypeError):
        raise AepipeError(f"{path}: not an anomaly score file written by the losses stage") from None
    _check_made_for(path, "model", model_sha256, model_path, "rerun `dvc repro losses`, or pass the matching --model")
    return fitted


def read_threshold(path: Path, model_path: Path, score_path: Path) -> float:
    """The per-image threshold from the threshold stage's report, checked against the model and score files."""
    try:
        saved = json.loads(path.read_text())
        threshold, model_sha256, score_sha256 = float(saved["per_image"]["threshold"]), saved["model_sha256"], saved["score_sha256"]
    except FileNotFoundError:
        raise AepipeError(f"{path}: threshold file not found; run `dvc repro threshold` first") from None
    except (ValueError, KeyError, TypeError):
        raise AepipeError(f"{path}: not a threshold file written by the threshold stage") from None
    _check_made_for(path, "model", model_sha256, model_path, "rerun `dvc repro threshold`, or pass the matching --model")
    _check_made_for(path, "anomaly score", score_sha256, score_path,
                    "rerun `dvc repro threshold`, or pass the matching --score")
    return threshold


def _check_made_for(path: Path, what: str, expected_sha256: str, used: Path, advice: str) -> None:
    if used.is_file() and file_sha256(used) != expected_sha256:
        raise AepipeError(f"{path} was computed for another {what} (sha256 {expected_sha256[:12]}…), not {used}; {advice}")
