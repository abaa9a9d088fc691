"""The denoising comparison: the autoencoder trained with train.noise_std 0 (plain), 0.3 and 0.5.

    python bench/denoising.py [--noise 0,0.3,0.5] [--classes 2,5,8] [--jobs 1] [--rev HEAD]

Queues, in a fresh clone of REV (as bench/one_class.py does), one experiment of the whole default
pipeline per noise level (`dvc exp run --queue -S train.noise_std=S`) and, per noise level, one
one-class experiment (to `publish`, which writes the metrics) for each of --classes, runs the queue
and reads back each run's metrics and its denoise, anomaly and train reports. MNIST from
$AEPIPE_MNIST_MIRROR or the official mirrors.

Results: bench/results/denoising.json and a Markdown table on stdout.
"""

import argparse
import json
import shutil
from datetime import date
from pathlib import Path

from aepipe.atomic import write_json
from one_class import RESULTS, clone_at, dvc, read_metrics, run_queue

LEVELS = ["0_1", "0_2", "0_3", "0_5"]  # params.yaml's denoise.noise_std


def reports(clone: Path, experiment: str) -> dict:
    """The experiment's denoise, anomaly and train reports, restored into the clone's workspace."""
    dvc("exp", "apply", experiment, cwd=clone)
    return {
        name: json.loads((clone / "reports" / f"{name}.json").read_text())
        for name in ("denoise", "anomaly", "train")
    }


def summarise(noise: float, saved: dict, metrics: dict, one_class: dict[int, dict]) -> dict:
    denoise, anomaly, train = saved["denoise"], saved["anomaly"], saved["train"]
    return {
        "model": denoise["model"],
        "val_mse": metrics["val_mse"],
        "clean": denoise["clean"],
        "by_noise": {level: denoise[f"noise_std_{level}"] for level in LEVELS},
        "roc_auc": {
            name: result["roc_auc"]
            for name, result in anomaly.items()
            if isinstance(result, dict) and "roc_auc" in result
        },
        "auc_patch_pixels": metrics.get("auc_patch_pixels"),
        "one_class_auc_held_out": {str(c): m["auc_held_out"] for c, m in one_class.items()},
        "train_seconds": train["train_seconds"],
        "images_per_second": train["images_per_second"],
        "noise_std": noise,
    }


def table(rows: dict[str, dict]) -> str:
    head = [
        "train.noise_std",
        *(f"PSNR σ {level.replace('_', '.')} (noisy → denoised)" for level in LEVELS),
        "judge σ 0.5",
        "SSIM σ 0.5",
        "clean PSNR",
        "val MSE",
        "one-class AUC",
        "images/s",
    ]
    lines = ["| " + " | ".join(head) + " |", "| --- " * len(head) + "|"]
    for noise, row in rows.items():
        levels = [
            f"{row['by_noise'][level]['psnr_noisy_db']:.1f} → "
            f"{row['by_noise'][level]['psnr_reconstructed_db']:.1f}"
            for level in LEVELS
        ]
        heaviest = row["by_noise"]["0_5"]
        one_class = ", ".join(f"{c}: {auc:.3f}" for c, auc in row["one_class_auc_held_out"].items())
        lines.append(
            f"| {noise} | "
            + " | ".join(levels)
            + f" | {heaviest['judge_accuracy_reconstructed']:.1%} | "
            f"{heaviest['ssim_reconstructed']:.3f} | {row['clean']['psnr_reconstructed_db']:.1f} "
            f"| {row['val_mse']:.5f} | {one_class} | {row['images_per_second']:.0f} |"
        )
    lines.append(
        "\nROC AUC by anomaly set: "
        + "; ".join(
            f"σ {noise}: " + ", ".join(f"{name} {auc:.3f}" for name, auc in row["roc_auc"].items())
            for noise, row in rows.items()
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", default="0,0.3,0.5")
    parser.add_argument("--classes", default="2,5,8", help="normal digits of the one-class runs")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run side by side")
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    noises, classes = args.noise.split(","), [int(c) for c in args.classes.split(",")]
    clone, rev = clone_at(args.rev, "denoising-")
    for noise in noises:
        dvc(
            "exp",
            "run",
            "--queue",
            "-n",
            f"noise-{noise}",
            "-S",
            f"train.noise_std={noise}",
            cwd=clone,
        )
        for c in classes:
            dvc(
                "exp",
                "run",
                "--queue",
                "-n",
                f"noise-{noise}-class-{c}",
                "-S",
                f"train.noise_std={noise}",
                "-S",
                f"data.normal_classes=[{c}]",
                "publish",
                cwd=clone,
            )
    seconds = run_queue(clone, args.jobs)
    metrics = read_metrics(clone)
    rows = {
        noise: summarise(
            float(noise),
            reports(clone, f"noise-{noise}"),
            metrics[f"noise-{noise}"],
            {c: metrics[f"noise-{noise}-class-{c}"] for c in classes},
        )
        for noise in noises
    }
    shutil.rmtree(clone.parent)
    write_json(
        RESULTS / "denoising.json",
        {
            "commit": rev,
            "date": date.today().isoformat(),
            "queue_seconds": round(seconds, 1),
            "protocol": "full MNIST, 20 epochs, default params but train.noise_std; one-class "
            "runs: that digit normal",
            "by_noise_std": rows,
        },
    )
    print(table(rows))


if __name__ == "__main__":
    main()
