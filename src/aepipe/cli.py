"""The `aepipe` command: score your own images with a trained model, its anomaly score and threshold.

    aepipe score PATH... [--model models/model.pt] [--score models/anomaly_score.json]
                         [--threshold reports/threshold.json] [--out FILE] [--maps DIR] [--invert]

PATH: PNG or JPEG files, folders of them (not recursive), or .npy arrays of 28×28 images. Images
are read as greyscale; any other size is resized to 28×28 (Lanczos), as MNIST digits are light
strokes on a dark background (use --invert for dark ink on light paper). A .npy array may hold
uint8 pixels (0–255) or floats in [0, 1], shaped (28, 28), (N, 28, 28) or (N, 1, 28, 28).
Writes CSV: source, score (the pipeline's anomaly.score: reconstruction MSE, or the combined
score), flagged (score > threshold). --maps DIR also writes one PNG per image into DIR: the image
beside its anomaly map (|image - reconstruction| per pixel, in colour over the image).
"""

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

from aepipe.atomic import atomic_path, file_sha256
from aepipe.errors import AepipeError, exit_on_error
from aepipe.images import IMAGE_SUFFIXES, SIDE, image_files, read_greyscale
from aepipe.model import describe_training, load_model
from aepipe.reconstruction import error_maps
from aepipe.scores import FittedScore, image_features


def main(argv: list[str] | None = None) -> None:
    exit_on_error(lambda: run(argv))


def run(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="aepipe", description="Anomaly scores from a trained aepipe autoencoder.")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score images; flag those above the per-image threshold",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    score.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    score.add_argument("--model", type=Path, default=Path("models/model.pt"))
    score.add_argument("--score", type=Path, default=Path("models/anomaly_score.json"),
                       help="the anomaly score's fitted statistics, written by the losses stage")
    score.add_argument("--threshold", type=Path, default=Path("reports/threshold.json"))
    score.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    score.add_argument("--maps", type=Path, metavar="DIR", help="write each image's anomaly map as a PNG into DIR")
    score.add_argument("--invert", action="store_true", help="invert greyscale (dark digits on a light background)")
    args = parser.parse_args(argv)

    fitted = read_score(args.score, args.model)
    threshold = read_threshold(args.threshold, args.model, args.score)
    if args.maps and args.maps.exists() and not args.maps.is_dir():
        raise AepipeError(f"--maps {args.maps}: not a folder; expected a folder to write the PNG maps into")
    model = load_model(args.model)
    if model.noise_std:  # it reconstructs noisy images well by design: noise alone scores lower than with a plain one
        print(f"note: {args.model} is a {describe_training(model)}", file=sys.stderr)
    sources, images = load_images(args.paths)
    if args.invert:
        images = 1 - images
    pixels = torch.from_numpy(images).unsqueeze(1)
    scores = fitted.score(image_features(model, pixels))
    if args.maps:
        write_maps(args.maps, sources, images, error_maps(model, pixels).numpy())
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["source", "score", "flagged"])
    writer.writerows((source, f"{score:.6g}", str(score > threshold).lower()) for source, score in zip(sources, scores))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(table.getvalue())
    else:
        sys.stdout.write(table.getvalue())


def read_score(path: Path, model_path: Path) -> FittedScore:
    """The anomaly score fitted by the losses stage, checked against the model file."""
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


def write_maps(folder: Path, sources: list[str], images: np.ndarray, maps: np.ndarray) -> None:
    """One PNG per image, numbered in scoring order: the image and, beside it, its anomaly map over it."""
    from PIL import Image

    from aepipe.plots import anomaly_overlay, as_rgb  # matplotlib takes a second to import: only when asked for

    folder.mkdir(parents=True, exist_ok=True)
    for number, (source, image, error_map) in enumerate(zip(sources, images, maps)):
        pair = np.concatenate([as_rgb(image), anomaly_overlay(image, error_map)], axis=1)
        picture = Image.fromarray(np.round(pair * 255).astype(np.uint8)).resize((pair.shape[1] * 8, pair.shape[0] * 8),
                                                                               Image.Resampling.NEAREST)
        with atomic_path(folder / _map_name(number, source)) as tmp:
            picture.save(tmp)


def _map_name(number: int, source: str) -> str:
    """`0003-digit.png` for scans/digit.jpg, `0004-digits-7.png` for digits.npy[7]: numbered, so names never clash."""
    name = Path(source).name
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
    stem = stem.replace(".npy[", "-").rstrip("]")
    return f"{number:04d}-" + "".join(char if char.isalnum() or char in "-_." else "_" for char in stem) + ".png"


def load_images(paths: list[Path]) -> tuple[list[str], np.ndarray]:
    """(sources, float32 images (N, 28, 28) in [0, 1]) from files, folders and .npy arrays."""
    sources, arrays = [], []
    for path in paths:
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise AepipeError(f"{path}: no .png, .jpg or .jpeg files in this folder")
            for file in files:
                sources.append(str(file))
                arrays.append(read_image(file)[None])
        elif not path.exists():
            raise AepipeError(f"{path}: no such file or folder")
        elif path.suffix.lower() == ".npy":
            batch = read_npy(path)
            sources.extend(f"{path}[{index}]" for index in range(len(batch)))
            arrays.append(batch)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            sources.append(str(path))
            arrays.append(read_image(path)[None])
        else:
            raise AepipeError(f"{path}: unsupported file; expected .png, .jpg, .jpeg, .npy or a folder")
    return sources, np.concatenate(arrays).astype(np.float32)


def read_image(path: Path) -> np.ndarray:
    return read_greyscale(path).astype(np.float32) / 255


def read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise AepipeError(f"{path}: not a readable .npy array ({error})") from None
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (SIDE, SIDE) or len(array) == 0:
        raise AepipeError(f"{path}: array of shape {array.shape}; expected (28, 28), (N, 28, 28) or (N, 1, 28, 28), N ≥ 1")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1:
        return array.astype(np.float32)
    raise AepipeError(f"{path}: {array.dtype} values from {array.min()} to {array.max()}; expected uint8 (0–255) or floats in [0, 1]")
