"""The inspection benchmark: the pipeline on inspection sets made from real photographs (MVTec AD layout).

    python bench/inspection.py [--sets brick,grass,brick-hue] [--side 64] [--jobs 1] [--rev HEAD]
    python bench/inspection.py --read CLONE   # the results of a run whose clone was kept (it failed)

Builds the sets (bench/inspection_sets.py: scikit-image's photographs, `pip install -e .[bench]`), then,
in a fresh `git clone` of REV, commits each set as the DVC-tracked data/images and queues its
experiments (the whole pipeline, to `publish`: default params but the dataset, its shape and the anomaly score):
- at the native side (64×64; colour for brick-hue), with each anomaly score and map: map_max on the
  error map (auto's choice for an inspection set), map_max on the SSIM map, combined, reconstruction;
- the same with a longer recipe (`train.epochs=100`, `train.flips=true`): 20 epochs of a couple of
  thousand images are 30 times fewer steps than 20 of MNIST's 60,000;
- squashed to 1×28×28, the baseline before images kept their size and colour (combined);
- brick-hue also in greyscale at the native side, where a hue-only defect cannot be seen.
It runs the queue (`dvc queue start`) and reads every experiment's metrics with `dvc exp show --json`.

Results: bench/results/inspection.json and a Markdown table on stdout (image ROC AUC per defect kind
and their mean, pixel ROC AUC, AUPRO, false alarms on test/good, training seconds).
"""

import argparse
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path

from inspection_sets import write_sets
from one_class import clone_at, dvc, read_metrics, run_queue

from aepipe.atomic import write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# What differs from params.yaml in every run: the dataset, its shape, one normal class (good), and
# indices that fit a few hundred validation images.
COMMON = ["data.dataset=folder", "data.normal_digits=[0]", "interpolate.start=0", "interpolate.end=1", "denoise.index=0"]
SCORES = {"map_max-error": ["anomaly.score=map_max", "anomaly.map=error"],
          "map_max-ssim": ["anomaly.score=map_max", "anomaly.map=ssim"],
          "combined": ["anomaly.score=combined"], "reconstruction": ["anomaly.score=reconstruction"]}
LONGER = ["train.epochs=100", "train.flips=true"]


def variants(name: str, side: int) -> dict[str, list[str]]:
    """Each experiment of one set: its name's tail → its params."""
    channels = 3 if name.endswith("-hue") else 1
    native = [f"data.side={side}", f"data.channels={channels}"]
    runs = {f"{side}x{channels}-{score}": [*native, *params] for score, params in SCORES.items()}
    runs |= {f"{side}x{channels}-longer-{score}": [*native, *LONGER, *SCORES[score]] for score in list(SCORES)[:3]}
    runs["28x1-combined"] = ["data.side=28", "data.channels=1", *SCORES["combined"]]
    if channels == 3:
        runs |= {f"{side}x1-longer-{score}": [f"data.side={side}", "data.channels=1", *LONGER, *SCORES[score]]
                 for score in list(SCORES)[:2]}
    return runs


def commit_images(clone: Path, images: Path, name: str) -> None:
    """Make `images` the clone's DVC-tracked data/images, committed: the experiments queued next start from it."""
    target = clone / "data" / "images"
    tracked = subprocess.run(["git", "ls-files", "data/images"], cwd=clone, capture_output=True, text=True).stdout
    if tracked.strip():
        subprocess.run(["git", "rm", "-rq", "--cached", "data/images"], cwd=clone, check=True)
    shutil.rmtree(target)
    shutil.copytree(images, target)
    dvc("add", "data/images", cwd=clone)
    subprocess.run(["git", "add", "data/images.dvc", "data/.gitignore"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", f"inspection set {name}"], cwd=clone, check=True)


def queue_and_run(clone: Path, names: list[str], side: int, jobs: int) -> float:
    """Each set committed in turn, its experiments queued from that commit; the queue's seconds."""
    sets = Path(tempfile.mkdtemp(prefix="inspection-sets-"))
    write_sets(sets, side)
    for name in names:
        commit_images(clone, sets / name, name)
        for tail, params in variants(name, side).items():
            dvc("exp", "run", "--queue", "-n", f"{name}-{tail}", *[arg for param in [*COMMON, *params] for arg in ("-S", param)],
                "publish", cwd=clone)
    shutil.rmtree(sets)
    return run_queue(clone, jobs)


def summarise(metrics: dict[str, dict], names: list[str], side: int) -> dict:
    rows = {}
    for name in names:
        for tail in variants(name, side):
            values = metrics[f"{name}-{tail}"]
            kinds = {key.removeprefix("auc_"): value for key, value in values.items() if key.startswith("auc_")
                     and key not in ("auc_held_out", "auc_defect_pixels", "auc_rotation", "auc_patch", "auc_blank",
                                     "auc_patch_pixels")}
            rows[f"{name} {tail}"] = {"kinds": kinds, "mean_kinds": sum(kinds.values()) / len(kinds),
                                      "pixel_roc_auc": values.get("auc_defect_pixels"), "aupro": values.get("aupro"),
                                      "fp_rate": values.get("fp_rate"), "train_seconds": values.get("train_seconds")}
    return rows


def table(rows: dict[str, dict]) -> str:
    kinds = sorted({kind for row in rows.values() for kind in row["kinds"]})
    columns = [*kinds, "mean", "pixel AUC", "AUPRO", "false alarms", "train s"]
    lines = ["| set, side×channels, score | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row['kinds'][kind]:.3f}" if kind in row["kinds"] else "" for kind in kinds]
        cells += [f"{row['mean_kinds']:.3f}", f"{row['pixel_roc_auc']:.3f}", f"{row['aupro']:.3f}",
                  f"{row['fp_rate']:.3f}", f"{row['train_seconds']:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="brick,grass,brick-hue")
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=1, help="experiments run side by side")
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--read", type=Path, metavar="CLONE", help="only read the experiments of a kept clone")
    args = parser.parse_args()
    names = args.sets.split(",")
    if args.read:
        clone, seconds = args.read, None
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD~" + str(len(names))], cwd=clone, capture_output=True,
                             text=True, check=True).stdout.strip()
    else:
        clone, rev = clone_at(args.rev, "inspection-")
        seconds = queue_and_run(clone, names, args.side, args.jobs)
    metrics = read_metrics(clone, all_commits=True)  # each set's experiments start from its own commit
    write_json(RESULTS / "inspection-experiments.json", metrics)
    rows = summarise(metrics, names, args.side)
    shutil.rmtree(clone.parent)
    write_json(RESULTS / "inspection.json", {
        "commit": rev, "date": date.today().isoformat(), "queue_seconds": seconds and round(seconds, 1), "side": args.side,
        "protocol": "MVTec AD layout from scikit-image photographs (bench/inspection_sets.py): train on "
        "train/good but a 20 % calibration share, test on test/good and each defect kind; default params "
        "but dataset, side, channels and the score", "rows": rows})
    print(table(rows))


if __name__ == "__main__":
    main()
