"""Checks a finished default run's outputs (bench/gpu/run.sh): every metric and figure present, the
numbers sane; writes them to a JSON file. With --compare, how far this run's val MSE is from
another's.

    python bench/gpu/check_outputs.py OUT.json [--compare EARLIER.json]
"""

import argparse
import json
import sys
from pathlib import Path

from aepipe.atomic import write_json

METRICS = [
    "dvclive/metrics.json",
    "metrics/threshold.json",
    "metrics/anomaly.json",
    "metrics/tsne.json",
    "metrics/denoise.json",
    "metrics/judge.json",
    "metrics/samples.json",
]
FIGURES = [
    "loss_histograms",
    "reconstructions",
    "loss_curves",
    "tsne",
    "interpolation",
    "denoising",
    "denoising_curves",
    "anomaly_scores",
    "most_anomalous",
    "samples",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    missing = [
        path
        for path in [*METRICS, *(f"plots/{name}.png" for name in FIGURES)]
        if not Path(path).is_file()
    ]
    metrics = {
        name: value
        for path in METRICS
        if Path(path).is_file()
        for name, value in json.loads(Path(path).read_text()).items()
    }
    train = json.loads(Path("reports/train.json").read_text())
    problems = [f"missing: {', '.join(missing)}"] if missing else []
    if not 0 < train["final_val_loss"] < train["initial_val_loss"]:
        problems.append(
            f"val MSE {train['final_val_loss']} did not fall below the untrained "
            f"{train['initial_val_loss']}"
        )
    result = {"metrics": metrics, "train": train, "problems": problems}
    if args.compare:
        earlier = json.loads(args.compare.read_text())["train"]["final_val_loss"]
        result["val_mse_relative_difference"] = abs(train["final_val_loss"] - earlier) / earlier
        print(
            f"val MSE {train['final_val_loss']:.6f} vs {earlier:.6f}: relative difference "
            f"{result['val_mse_relative_difference']:.2e}"
        )
    write_json(args.out, result)
    print(
        f"device {train['device']}, val MSE {train['final_val_loss']:.6f}, train "
        f"{train['train_seconds']} s, threshold {metrics.get('threshold')}"
    )
    if problems:
        sys.exit("; ".join(problems))


if __name__ == "__main__":
    main()
