"""The one-class anomaly-detection benchmark: train on one class, the nine others are the anomalies.

    python bench/one_class.py [--dataset mnist|fashion-mnist] [--classes 0,1,...,9] [--seeds 1,2]
                              [--seed-classes 2,5,8] [--jobs 1] [--rev HEAD]

Queues one experiment per class (`dvc exp run --queue -S data.normal_classes=[C] publish`: the
whole pipeline, whose `publish` stage gives git the metrics read back; default params otherwise),
then one per extra seed for the --seed-classes, runs the queue (`dvc queue start`) and reads every
experiment's metrics back with `dvc exp show --json`. It works in a fresh `git clone` of REV in a
temporary directory, so it measures committed code and leaves this workspace alone. The data comes
from $AEPIPE_MNIST_MIRROR / $AEPIPE_FASHION_MNIST_MIRROR (a URL or a folder of the four .gz files)
or the official mirrors.

Results: bench/results/one_class-<dataset>.json, its per-class ROC AUC as a DVC plot
(one_class-<dataset>-per_class.csv) and a Markdown table on stdout, with published results
on the same protocol beside it.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from aepipe.atomic import write_csv, write_json
from provenance import REPO, RESULTS

METRICS = ["auc_held_out", "auc_blank", "auc_patch_pixels", "fp_rate", "auc_rotation", "auc_patch"]
# Mean ROC AUC over the ten one-class problems, as each paper reports it.
PUBLISHED = {
    "mnist": {
        "Deep SVDD (Ruff et al., ICML 2018)": 0.948,
        "OCGAN (Perera et al., CVPR 2019)": 0.975,
        "GEOM (Golan & El-Yaniv, NeurIPS 2018)": 0.980,
        "ARNet (Ye et al., 2020)": 0.983,
    },
    "fashion-mnist": {
        "GEOM (Golan & El-Yaniv, NeurIPS 2018)": 0.935,
        "ARNet (Ye et al., 2020)": 0.939,
    },
}


def dvc(*args: str, cwd: Path) -> str:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
    )
    result = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def clone_at(rev: str, prefix: str) -> tuple[Path, str]:
    """A fresh clone of this repository at REV in a temporary folder, and REV's short hash. The
    folder is kept if anything fails (its runs are in its DVC cache); remove it with
    shutil.rmtree(clone.parent)."""
    rev = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    clone = Path(tempfile.mkdtemp(prefix=prefix)) / "aepipe"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=clone, check=True)
    return clone, rev


def run_queue(clone: Path, jobs: int) -> float:
    """Run every queued experiment; the seconds it took. Stops the script if any failed."""
    started = time.perf_counter()
    dvc("queue", "start", "-j", str(jobs), cwd=clone)
    while any(state in dvc("queue", "status", cwd=clone) for state in ("Queued", "Running")):
        time.sleep(10)
    if "Failed" in dvc("queue", "status", cwd=clone):
        sys.exit(
            f"some experiments failed:\n{dvc('queue', 'status', cwd=clone)}\nsee `dvc queue logs "
            f"NAME` in {clone}"
        )
    return time.perf_counter() - started


def read_metrics(clone: Path, all_commits: bool = False) -> dict[str, dict]:
    """Every experiment's headline metrics, by name: those of HEAD, or of every commit."""
    shown = json.loads(
        dvc("exp", "show", "--json", *(["--all-commits"] if all_commits else []), cwd=clone)
    )
    metrics = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            # A metrics file absent from an experiment has no "data".
            values = {
                name: value
                for file in data["metrics"].values()
                for name, value in file.get("data", {}).items()
            }
            metrics[experiment["name"]] = values
    return metrics


def summarise(
    dataset: str, classes: list[int], seeds: list[int], seed_classes: list[int], metrics: dict
) -> dict:
    rows = {
        str(c): {name: metrics[f"{dataset}-{c}-s42"].get(name) for name in METRICS} for c in classes
    }
    seed_rows = {
        str(c): {
            str(seed): metrics[f"{dataset}-{c}-s{seed}"]["auc_held_out"] for seed in [42, *seeds]
        }
        for c in seed_classes
    }
    held_out = [row["auc_held_out"] for row in rows.values()]
    return {
        "per_class": rows,
        "mean": {name: sum(row[name] for row in rows.values()) / len(rows) for name in METRICS},
        "worst_class": {
            "class": classes[held_out.index(min(held_out))],
            "auc_held_out": min(held_out),
        },
        "seeds": seed_rows,
        "published_mean_auc_held_out": PUBLISHED[dataset],
    }


def write_per_class_plot(dataset: str, summary: dict) -> None:
    """Each class's held-out ROC AUC as data, a DVC plot (dvc.yaml's top-level plots) that overlays
    commits."""
    rows = [
        {"normal_class": name, "auc_held_out": round(row["auc_held_out"], 4)}
        for name, row in summary["per_class"].items()
    ]
    write_csv(RESULTS / f"one_class-{dataset}-per_class.csv", pd.DataFrame(rows))


def table(summary: dict) -> str:
    lines = ["| normal class | " + " | ".join(METRICS) + " |", "| --- " * (len(METRICS) + 1) + "|"]
    for name, row in [*summary["per_class"].items(), ("mean", summary["mean"])]:
        lines.append(f"| {name} | " + " | ".join(f"{row[metric]:.3f}" for metric in METRICS) + " |")
    for normal_class, by_seed in summary["seeds"].items():
        lines.append(
            f"\nclass {normal_class}, auc_held_out by seed: "
            + ", ".join(f"{s}: {v:.3f}" for s, v in by_seed.items())
        )
    lines.append(
        "\npublished mean ROC AUC: "
        + "; ".join(f"{k} {v:.3f}" for k, v in summary["published_mean_auc_held_out"].items())
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument(
        "--seeds", default="1,2", help="extra seeds (besides params.yaml's 42) for --seed-classes"
    )
    parser.add_argument("--seed-classes", default="2,5,8")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run side by side")
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    classes, seeds = (
        [int(c) for c in args.classes.split(",")],
        [int(s) for s in args.seeds.split(",") if s],
    )
    seed_classes = [int(c) for c in args.seed_classes.split(",") if c]
    runs = [(c, 42) for c in classes] + [(c, seed) for c in seed_classes for seed in seeds]
    clone, rev = clone_at(args.rev, "one-class-")
    for normal_class, seed in runs:
        dvc(
            "exp",
            "run",
            "--queue",
            "-n",
            f"{args.dataset}-{normal_class}-s{seed}",
            "-S",
            f"data.dataset={args.dataset}",
            "-S",
            f"data.normal_classes=[{normal_class}]",
            "-S",
            f"seed={seed}",
            "publish",
            cwd=clone,
        )
    seconds = run_queue(clone, args.jobs)
    metrics = read_metrics(clone)
    write_json(RESULTS / f"one_class-{args.dataset}-experiments.json", metrics)
    summary = summarise(args.dataset, classes, seeds, seed_classes, metrics)
    shutil.rmtree(clone.parent)
    write_json(
        RESULTS / f"one_class-{args.dataset}.json",
        {
            "dataset": args.dataset,
            "commit": rev,
            "date": date.today().isoformat(),
            "experiments": len(runs),
            "queue_seconds": round(seconds, 1),
            "protocol": "train on one class (all its training images, 20 epochs, "
            "default params), calibrate on half its test images; anomalies: the other nine "
            "classes' test images",
            **summary,
        },
    )
    write_per_class_plot(args.dataset, summary)
    print(table(summary))


if __name__ == "__main__":
    main()
