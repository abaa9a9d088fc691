"""The inspection benchmark: the pipeline on inspection sets made from real photographs (MVTec AD
layout).

    python bench/inspection.py [--sets brick,grass,brick-hue,gravel] [--only REGEX] [--side 64]
                               [--jobs 1] [--rev HEAD]
    python bench/inspection.py --read CLONE  # the results of a run whose clone was kept (it failed)

Builds the sets (bench/inspection_sets.py: scikit-image's photographs, `pip install -e .[bench]`),
then, in a fresh `git clone` of REV, commits each set as the DVC-tracked data/images and queues its
experiments (the whole pipeline, to `publish`: default params but the dataset, its shape and the
anomaly score):
- at the native side (64×64; colour for brick-hue): the defaults (auto: map_max on the map of the
  defect segmenter trained with the model), and without a segmenter (`train.segmenter=false`) each
  score and map of the autoencoder alone: map_max on the error map, on the SSIM map, combined,
  reconstruction;
- the defaults with each lever against false alarms (LEVERS): 20 epochs of the segmenter instead of
  10, training images mirrored at random (`train.flips=true`: the autoencoder's and the
  segmenter's), their light changed at random (`train.photometric`), the threshold from a fitted
  tail (`threshold.method=gpd`);
- those without a segmenter also with a longer recipe (`train.epochs=100`, `train.flips=true`): 20
  epochs of a couple of thousand images are 30 times fewer steps than 20 of MNIST's 60,000;
- squashed to 1×28×28, the baseline before images kept their size and colour (combined);
- brick-hue also in greyscale at the native side, where a hue-only defect cannot be seen;
- the defaults with the segmenter's synthetic defects made otherwise (DEFECTS): other masks,
  procedural sources, outside textures (the clone's data/textures holds crops of photographs that
  are no set's). `--only` runs the experiments whose name (set-tail, e.g. `brick-64x1-segmenter`) it
  matches; the results file keeps the rows of earlier runs, each with its commit. It runs the queue
  (`dvc queue start`) and reads every experiment's metrics with `dvc exp show --json`.

Results: bench/results/inspection.json (each set's defaults row marked `"default": true`; each row
its protocol, the sets' layout: PROTOCOLS) and a Markdown table on stdout: image ROC AUC per defect
kind and their mean, pixel ROC AUC, AUPRO, false alarms on test/good with their 95 % interval and
whether the 1 % target lies in it, the blank and saturated frames' ROC AUC, training seconds.
"""

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path

from aepipe.atomic import write_json
from aepipe.params import DefectSources
from inspection_sets import write_sets, write_textures
from inspection_table import table
from one_class import clone_at, dvc, read_metrics, run_queue
from provenance import RESULTS

# What differs from params.yaml in every run: the dataset, its shape, one normal class (good), and
# indices that fit a few hundred validation images.
COMMON = [
    "data.dataset=folder",
    "data.normal_classes=[0]",
    "interpolate.start=0",
    "interpolate.end=1",
    "denoise.index=0",
]
# the autoencoder's own maps: no segmenter is trained (nor read)
NO_SEGMENTER = ["train.segmenter=false"]
SCORES = {
    "segmenter": [],  # auto's choice for an inspection set: map_max on the segmenter's map
    "map_max-error": [*NO_SEGMENTER, "anomaly.score=map_max", "anomaly.map=error"],
    "map_max-ssim": [*NO_SEGMENTER, "anomaly.score=map_max", "anomaly.map=ssim"],
    "combined": [*NO_SEGMENTER, "anomaly.score=combined"],
    "reconstruction": [*NO_SEGMENTER, "anomaly.score=reconstruction"],
}
LONGER = ["train.epochs=100", "train.flips=true"]
# Against false alarms on new good images, each beside the defaults: the segmenter's epochs,
# training images mirrored, their light changed, a fitted tail for the threshold; and the map
# blurred by 2 px, the inspection default before σ 1 found thin defects better, and by 1 px, the
# default before the blur was chosen from the set's own calibration images (auto). (Scale jitter and
# the segmenter stopped on held-out synthetic defects were measured at af12ef7 and dropped:
# docs/results.md.)
LEVERS = {
    "20": ["train.segmenter_epochs=20"],
    "flips": ["train.flips=true"],
    "photometric": ["train.photometric=0.2"],
    "gpd": ["threshold.method=gpd"],
    "sigma2": ["anomaly.map_sigma=2.0"],
    "sigma1": ["anomaly.map_sigma=1.0"],
    "seed1": ["seed=1"],
    "seed2": ["seed=2"],
}  # the defaults' run-to-run spread
# What the segmenter's synthetic defects are made of (train.defects: shares, each kind 0 unless
# named): every mask (blobs, Perlin regions, thin cracks) with the set's own images; with the
# procedural sources beside them (no outside data); with outside textures
# (bench/inspection_sets.py's OUTSIDE_PHOTOS, in data/textures/) and the shuffled grid,
# TransFusion's pair; those two with the map blurred by 1 px (measured before σ 1 was the inspection
# default: `anomaly.map_sigma` auto). The rows -defects-shade (2319f03: own images beside the image
# itself shaded under the mask) were measured and the source dropped.
ALL_MASKS = [f"train.defects.masks.{kind}=1.0" for kind in ("blob", "perlin", "lines")]


def sources(**shares: float) -> list[str]:
    return [
        f"train.defects.sources.{kind}={shares.get(kind, 0.0)}"
        for kind in DefectSources.model_fields
    ]


DEFECTS = {
    "masks": [*sources(own=1.0), *ALL_MASKS],
    "procedural": [*sources(own=1.0, perlin=1.0, flat=1.0, grid=1.0), *ALL_MASKS],
    "textures": [*sources(textures=1.0, grid=1.0), *ALL_MASKS],
    "procedural-sigma1": [
        *sources(own=1.0, perlin=1.0, flat=1.0, grid=1.0),
        *ALL_MASKS,
        "anomaly.map_sigma=1.0",
    ],
    "textures-sigma1": [*sources(textures=1.0, grid=1.0), *ALL_MASKS, "anomaly.map_sigma=1.0"],
}
# The sets' layout a row was measured on (bench/inspection_sets.py); rows without one are protocol
# 1.
PROTOCOLS = {
    1: "MVTec AD layout from scikit-image photographs: train on train/good but a random 20 % "
    "calibration share (patches from the training blocks), test on 232 test/good and each defect "
    "kind; default params but dataset, side, channels and the score",
    2: "as 1, but calibration on 1,000 validation/good patches from blocks of their own (no "
    "training pixel), 500 test/good from the test blocks",
}
PROTOCOL = 2
# a failed camera's frames: caught by the dead-frame check
DEAD_FRAMES = ("auc_blank", "auc_saturate")


def native_channels(name: str) -> int:
    return 3 if name.endswith("-hue") else 1


def default_tail(name: str, side: int) -> str:
    """The experiment of the defaults (params.yaml's, but the set and its native shape)."""
    return f"{side}x{native_channels(name)}-segmenter"


def variants(name: str, side: int) -> dict[str, list[str]]:
    """Each experiment of one set: its name's tail → its params."""
    channels = native_channels(name)
    native = [f"data.side={side}", f"data.channels={channels}"]
    runs = {f"{side}x{channels}-{score}": [*native, *params] for score, params in SCORES.items()}
    runs |= {
        f"{side}x{channels}-segmenter-{lever}": [*native, *params]
        for lever, params in LEVERS.items()
    }
    runs |= {
        f"{side}x{channels}-defects-{name}": [*native, *params] for name, params in DEFECTS.items()
    }
    runs |= {
        f"{side}x{channels}-longer-{score}": [*native, *LONGER, *SCORES[score]]
        for score in list(SCORES)[1:4]
    }
    runs["28x1-combined"] = ["data.side=28", "data.channels=1", *SCORES["combined"]]
    if channels == 3:
        grey = [f"data.side={side}", "data.channels=1"]
        runs[f"{side}x1-segmenter"] = grey
        runs |= {
            f"{side}x1-longer-{score}": [*grey, *LONGER, *SCORES[score]]
            for score in list(SCORES)[1:3]
        }
    return runs


def chosen_variants(names: list[str], side: int, only: str) -> dict[tuple[str, str], list[str]]:
    """The experiments to run, (set, tail) → params: those whose name, set-tail, `only` (a regex)
    matches."""
    return {
        (name, tail): params
        for name in names
        for tail, params in variants(name, side).items()
        if re.search(only, f"{name}-{tail}")
    }


def commit_folder(clone: Path, source: Path, folder: str, message: str) -> None:
    """Make `source` the clone's DVC-tracked `folder` (data/images, data/textures), committed: the
    experiments queued next start from it."""
    target = clone / folder
    tracked = subprocess.run(
        ["git", "ls-files", folder], cwd=clone, capture_output=True, text=True
    ).stdout
    if tracked.strip():
        subprocess.run(["git", "rm", "-rq", "--cached", folder], cwd=clone, check=True)
    shutil.rmtree(target)
    shutil.copytree(source, target)
    dvc("add", folder, cwd=clone)
    subprocess.run(["git", "add", f"{folder}.dvc", "data/.gitignore"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=clone, check=True)


def queue_and_run(
    clone: Path, chosen: dict[tuple[str, str], list[str]], side: int, jobs: int
) -> float:
    """Each set committed in turn, its chosen experiments queued from that commit; the queue's
    seconds."""
    sets = Path(tempfile.mkdtemp(prefix="inspection-sets-"))
    write_sets(sets, side)
    write_textures(sets / "outside-textures")
    commit_folder(clone, sets / "outside-textures", "data/textures", "outside textures")
    for name in dict.fromkeys(name for name, _ in chosen):
        commit_folder(clone, sets / name, "data/images", f"inspection set {name}")
        for (_, tail), params in (
            (key, params) for key, params in chosen.items() if key[0] == name
        ):
            dvc(
                "exp",
                "run",
                "--queue",
                "-n",
                f"{name}-{tail}",
                *[arg for param in [*COMMON, *params] for arg in ("-S", param)],
                "publish",
                cwd=clone,
            )
    shutil.rmtree(sets)
    return run_queue(clone, jobs)


def summarise(metrics: dict[str, dict], chosen: list[tuple[str, str]], rev: str, side: int) -> dict:
    """One row per experiment ("set tail"); train s: the autoencoder's and the segmenter's
    training."""
    rows = {}
    for name, tail in chosen:
        values = metrics[f"{name}-{tail}"]
        kinds = {
            key.removeprefix("auc_"): value
            for key, value in values.items()
            if key.startswith("auc_")
            and key
            not in (
                "auc_held_out",
                "auc_defect_pixels",
                "auc_rotation",
                "auc_patch",
                *DEAD_FRAMES,
                "auc_patch_pixels",
            )
        }
        rows[f"{name} {tail}"] = {
            "kinds": kinds,
            "mean_kinds": sum(kinds.values()) / len(kinds),
            "pixel_roc_auc": values.get("auc_defect_pixels"),
            "aupro": values.get("aupro"),
            **{
                key: values.get(key)
                for key in (
                    "fp_rate",
                    "fp_rate_low",
                    "fp_rate_high",
                    "calibration_holds",
                    *DEAD_FRAMES,
                )
            },
            # the blur auto chose
            **({"map_sigma": values["map_sigma"]} if "map_sigma" in values else {}),
            "protocol": PROTOCOL,
            "commit": rev,
            "train_seconds": values.get("train_seconds") + values.get("segmenter_seconds", 0),
            **({"default": True} if tail == default_tail(name, side) else {}),
        }
    return rows


def kept_rows(earlier: dict[str, dict], rows: dict[str, dict]) -> dict[str, dict]:
    """The earlier rows a run keeps: all, those of another protocol that a new row's name replaces
    renamed "NAME (protocol N)"."""
    kept = {}
    for name, row in earlier.items():
        protocol = row.get("protocol", 1)
        kept[f"{name} (protocol {protocol})" if name in rows and protocol != PROTOCOL else name] = (
            row
        )
    return kept


def experiment_metrics(
    args, chosen: dict
) -> tuple[Path | None, dict[str, dict], str, float | None]:
    """(the clone, every experiment's metrics by name, the commit they ran at, the queue's seconds):
    run now, read from a kept clone (--read) or from the saved metrics (--saved)."""
    if args.saved:
        return (
            None,
            json.loads((RESULTS / "inspection-experiments.json").read_text()),
            args.saved,
            None,
        )
    if args.read:
        # The commit the clone was made at: the parent of its first commit of textures.
        first = subprocess.run(
            ["git", "log", "--format=%H", "--grep=^outside textures$"],
            cwd=args.read,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        rev = subprocess.run(
            ["git", "rev-parse", "--short", f"{first}~1"],
            cwd=args.read,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return args.read, read_metrics(args.read, all_commits=True), rev, None
    clone, rev = clone_at(args.rev, "inspection-")
    seconds = queue_and_run(clone, chosen, args.side, args.jobs)
    # each set's experiments: its own commit
    return clone, read_metrics(clone, all_commits=True), rev, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="brick,grass,brick-hue,gravel")
    parser.add_argument(
        "--only",
        default="",
        help="a regex: run only the experiments (set-tail) it finds; "
        "the results file keeps the other rows of earlier runs",
    )
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=1, help="experiments run side by side")
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument(
        "--read", type=Path, metavar="CLONE", help="only read the experiments of a kept clone"
    )
    parser.add_argument(
        "--saved",
        metavar="REV",
        help="only summarise experiments of commit REV from the saved "
        "metrics (results/inspection-experiments.json), e.g. ones queued by hand in a run's clone",
    )
    args = parser.parse_args()
    chosen = chosen_variants(args.sets.split(","), args.side, args.only)
    clone, metrics, rev, seconds = experiment_metrics(args, chosen)
    measured = [key for key in chosen if f"{key[0]}-{key[1]}" in metrics]
    if missing := [f"{name}-{tail}" for name, tail in chosen if (name, tail) not in measured]:
        print(f"no metrics (removed from the queue, or failed) for: {', '.join(missing)}")
    rows = summarise(metrics, measured, rev, args.side)
    earlier = (
        json.loads((RESULTS / "inspection.json").read_text())
        if (RESULTS / "inspection.json").exists()
        else {}
    )
    write_json(
        RESULTS / "inspection-experiments.json",
        {**json.loads((RESULTS / "inspection-experiments.json").read_text()), **metrics}
        if earlier
        else metrics,
    )
    run = {
        "commit": rev,
        "date": date.today().isoformat(),
        "queue_seconds": seconds and round(seconds, 1),
        "only": args.only or None,
        "experiments": len(measured),
    }
    write_json(
        RESULTS / "inspection.json",
        {
            "side": args.side,
            "runs": [*earlier.get("runs", []), run],
            "protocols": PROTOCOLS,
            "rows": {**kept_rows(earlier.get("rows", {}), rows), **rows},
        },
    )
    if clone is not None:
        shutil.rmtree(clone.parent)  # only now: a run that failed before keeps its clone for --read
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
