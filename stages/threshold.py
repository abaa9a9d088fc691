"""Stage threshold: the seed's anomaly threshold (val mean + k·std of per-batch losses) and histograms."""

import pandas as pd

from aepipe.anomaly import mean_std_threshold, summary
from aepipe.atomic import write_json
from aepipe.errors import exit_on_error
from aepipe.params import load_params
from aepipe.plots import loss_histograms, save


def main() -> None:
    k = load_params("params.yaml").threshold.k
    losses = {split: pd.read_csv(f"data/losses/{split}_batches.csv")["loss"].to_numpy() for split in ("train", "val")}
    threshold = mean_std_threshold(losses["val"], k)
    write_json("metrics/threshold.json", {
        "rule": "mean + k * std of per-batch validation losses",
        "k": k,
        "threshold": threshold,
        "train": summary(losses["train"]),
        "val": summary(losses["val"]),
    })
    save(loss_histograms(losses, threshold, k), "plots/loss_histograms.png")


if __name__ == "__main__":
    exit_on_error(main)
