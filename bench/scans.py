"""The scans benchmark: defects of a few pixels on 512×512 scans, found at full resolution by tiling
(data.tile) or on the scans resized to the model's side.

    python bench/scans.py [--photo brick] [--only REGEX] [--rev HEAD] [--jobs 1]

Builds an inspection set of scans in the MVTec AD layout from one of scikit-image's texture
photographs (512×512, `pip install -e .[bench]`): each scan a 4×4 mosaic of 128×128 blocks of the
photograph, each block flipped at random, the blocks of train/good, validation/good (calibration)
and test from the three interleaved classes of bench/inspection_sets.py (no calibration or test
pixel was trained on). Its defects are that benchmark's kinds drawn at the scan's full size: a
scratch 1–2 pixels wide, a dark spot of radius 2.5–5, a soft stain of radius 5–9, a foreign square
of 8–14 pixels (of gravel; of grass on gravel), each with its mask. Then, in a fresh `git clone` of
REV, the pipeline (default params but the dataset and its shape) through the DVC queue, to
`publish`:
- tiled-64: the scans whole, cut into 64×64 tiles overlapping by data.tile_overlap (16);
- resized-64: each scan resized to 64×64 (a spot of radius 3 becomes one of 0.4 pixels);
- resized-256: each resized to 256×256.

Results: bench/results/scans.json (rows with their commit) and a Markdown table on stdout: image ROC
AUC per defect kind and their mean, pixel ROC AUC and AUPRO (at the scan's full size for tiles; at
the resized side for the others, masks resized alike), false alarms on test/good, training seconds
and the seconds per scan of `aepipe score --onnx` on the 60 test scans (decoding to the CSV).
`--only` runs the variants whose name it matches (a regex, e.g. `tiled`); the other rows are kept.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from aepipe.atomic import write_json
from inspection import COMMON, commit_folder
from inspection_sets import BLOCK, CALIBRATION_BLOCKS, KINDS, TEST_BLOCKS, TRAIN_BLOCKS
from one_class import clone_at, dvc, read_metrics, run_queue
from provenance import RESULTS

SCAN = 512  # pixels
COUNTS = {"train/good": 40, "validation/good": 40, "test/good": 20}
PER_KIND = 10
VARIANTS = {
    "tiled-64": ["data.side=64", "data.tile=64", "data.val_size=null"],
    "resized-64": ["data.side=64"],
    "resized-256": ["data.side=256"],
}
# the photograph a foreign square is cut from
FOREIGN = {"brick": "gravel", "grass": "gravel", "gravel": "grass"}


PIECE = 64  # pixels: the side of a mosaic's pieces, quarters of the photograph's blocks


def mosaic(photo: np.ndarray, stripe: int, rng: np.random.Generator) -> np.ndarray:
    """A SCAN × SCAN scan in [0, 1]: quarters of the photograph's blocks whose (row + column) % 3 is
    `stripe`, each flipped at random (left-right, upside-down), laid side by side."""
    blocks = [
        (row, column)
        for row in range(photo.shape[0] // BLOCK)
        for column in range(photo.shape[1] // BLOCK)
        if (row + column) % 3 == stripe
    ]
    pieces = [
        (row * BLOCK + top, column * BLOCK + left)
        for row, column in blocks
        for top in range(0, BLOCK, PIECE)
        for left in range(0, BLOCK, PIECE)
    ]
    per_side = SCAN // PIECE
    scan = np.zeros((SCAN, SCAN))
    for place in range(per_side * per_side):
        top, left = pieces[rng.integers(len(pieces))]
        piece = photo[top : top + PIECE, left : left + PIECE].astype(np.float64) / 255
        piece = piece[:, ::-1] if rng.random() < 0.5 else piece
        piece = piece[::-1] if rng.random() < 0.5 else piece
        row, column = divmod(place, per_side)
        scan[row * PIECE : (row + 1) * PIECE, column * PIECE : (column + 1) * PIECE] = piece
    return scan


def write_scan_set(dest: Path, name: str, seed: int = 0) -> None:
    from skimage import data

    photo, other = getattr(data, name)(), getattr(data, FOREIGN[name])().astype(np.float64) / 255
    rng = np.random.default_rng(seed)

    def save(pixels, path):
        Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)

    for folder, stripe in (
        ("train/good", TRAIN_BLOCKS),
        ("validation/good", CALIBRATION_BLOCKS),
        ("test/good", TEST_BLOCKS),
    ):
        (dest / folder).mkdir(parents=True)
        for index in range(COUNTS[folder]):
            save(mosaic(photo, stripe, rng), dest / folder / f"{index:03d}.png")
    for kind, make in KINDS.items():
        (dest / "test" / kind).mkdir(parents=True)
        (dest / "ground_truth" / kind).mkdir(parents=True)
        for index in range(PER_KIND):
            scan = mosaic(photo, TEST_BLOCKS, rng)
            mask = make(scan, rng, other)
            save(scan, dest / "test" / kind / f"{index:03d}.png")
            save(mask.astype(np.float64), dest / "ground_truth" / kind / f"{index:03d}_mask.png")


def scoring_seconds(clone: Path, experiment: str) -> float:
    """Seconds per scan of `aepipe score --onnx` (decoding, tiles, scores, stitched maps, CSV) on
    the set's 60 test scans, with the experiment's detector (from the DVC cache, as its dvc.lock
    names it)."""
    ref = dvc("exp", "show", "--json", cwd=clone)  # the experiment's commit, by name
    commit = next(
        experiment_rev["rev"]
        for line in json.loads(ref)
        for experiment_rev in [
            e["revs"][0] for e in line.get("experiments") or [] if e["name"] == experiment
        ]
    )
    lock = yaml.safe_load(
        subprocess.run(
            ["git", "show", f"{commit}:dvc.lock"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    md5 = next(
        out["md5"]
        for out in lock["stages"]["export"]["outs"]
        if out["path"] == "models/detector.onnx"
    )
    detector = clone / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    scans = sorted((clone / "data" / "images" / "test").rglob("*.png"))
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "aepipe"),
            "score",
            "--onnx",
            str(detector),
            *map(str, scans),
        ],
        cwd=clone,
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - started) / len(scans)


def row(values: dict, rev: str, seconds_per_scan: float) -> dict:
    kinds = {kind: values[f"auc_{kind}"] for kind in KINDS}
    return {
        "kinds": kinds,
        "mean_kinds": sum(kinds.values()) / len(kinds),
        "pixel_roc_auc": values["auc_defect_pixels"],
        "aupro": values["aupro"],
        **{key: values.get(key) for key in ("fp_rate", "fp_rate_low", "fp_rate_high")},
        "train_seconds": values["train_seconds"] + values.get("segmenter_seconds", 0),
        "scoring_seconds_per_scan": seconds_per_scan,
        "commit": rev,
    }


def table(rows: dict[str, dict]) -> list[str]:
    lines = [
        "| scans | "
        + " | ".join(KINDS)
        + " | mean | pixel ROC AUC | AUPRO | false alarms | train s | s per scan |",
        "|---" * (len(KINDS) + 7) + "|",
    ]
    for name, values in rows.items():
        kinds = " | ".join(f"{values['kinds'][kind]:.3f}" for kind in KINDS)
        lines.append(
            f"| {name} | {kinds} | {values['mean_kinds']:.3f} | {values['pixel_roc_auc']:.3f} | "
            f"{values['aupro']:.3f} | {values['fp_rate']:.1%} | {values['train_seconds']:.0f} | "
            f"{values['scoring_seconds_per_scan']:.3f} |"
        )
    return lines


def chosen_variants(only: str) -> dict[str, list[str]]:
    """VARIANTS whose name `only` (a regex) matches; an `only` that matches none is refused."""
    chosen = {variant: params for variant, params in VARIANTS.items() if re.search(only, variant)}
    if not chosen:
        raise SystemExit(f"--only {only!r} matches none of {', '.join(VARIANTS)}")
    return chosen


def queued_run(args) -> tuple[Path, str, float]:
    """(the clone, its commit, the queue's seconds): the set committed in a fresh clone, every
    variant queued and run. A run that fails keeps its clone for --read."""
    clone, rev = clone_at(args.rev, "scans-")
    sets = Path(tempfile.mkdtemp(prefix="scans-"))
    write_scan_set(sets / args.photo, args.photo)
    commit_folder(clone, sets / args.photo, "data/images", f"scans of {args.photo}")
    shutil.rmtree(sets)
    for variant, params in chosen_variants(args.only).items():
        dvc(
            "exp",
            "run",
            "--queue",
            "-n",
            f"{args.photo}-{variant}",
            *[arg for param in [*COMMON, *params] for arg in ("-S", param)],
            "publish",
            cwd=clone,
        )
    return clone, rev, run_queue(clone, args.jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="brick", choices=sorted(FOREIGN))
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--only", default="", help="a regex: run only the variants it finds")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run side by side")
    parser.add_argument(
        "--read", type=Path, metavar="CLONE", help="only read the experiments of a kept clone"
    )
    args = parser.parse_args()
    clone, rev, seconds = (args.read, args.rev, None) if args.read else queued_run(args)
    metrics = read_metrics(clone, all_commits=True)
    rows = {
        f"{args.photo} {variant}": row(
            metrics[f"{args.photo}-{variant}"],
            rev,
            scoring_seconds(clone, f"{args.photo}-{variant}"),
        )
        for variant in VARIANTS
        if f"{args.photo}-{variant}" in metrics
    }
    earlier = (
        json.loads((RESULTS / "scans.json").read_text())
        if (RESULTS / "scans.json").exists()
        else {}
    )
    write_json(
        RESULTS / "scans.json",
        {
            "runs": [
                *earlier.get("runs", []),
                {
                    "commit": rev,
                    "date": date.today().isoformat(),
                    "photo": args.photo,
                    "queue_seconds": seconds and round(seconds, 1),
                    "scan": SCAN,
                },
            ],
            "rows": {**earlier.get("rows", {}), **rows},
        },
    )
    shutil.rmtree(clone.parent)
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
