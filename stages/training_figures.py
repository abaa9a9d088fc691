"""Stage training_figures: reconstructions epoch by epoch, and the loss curves from DVCLive's
logs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aepipe.figures.plots import loss_curves, reconstruction_grid, save
from aepipe.run_guard import run_guarded

LIVE_PLOTS = "dvclive/plots"


def main() -> None:
    train_loss, val_loss = (
        pd.read_csv(f"{LIVE_PLOTS}/metrics/{name}.tsv", sep="\t")[name].to_numpy()
        for name in ("train_mse", "val_mse")
    )
    steps = pd.DataFrame(json.loads(Path(f"{LIVE_PLOTS}/custom/batch_mse.json").read_text()))
    batch_loss = steps.pivot_table(
        index="epoch", columns=steps.groupby("epoch").cumcount(), values="mse"
    ).to_numpy()
    samples = np.load("data/train/reconstructions.npz")
    save(
        reconstruction_grid(samples["images"], samples["reconstructions"]),
        "plots/reconstructions.png",
    )
    save(loss_curves(train_loss, val_loss, batch_loss), "plots/loss_curves.png")


if __name__ == "__main__":
    run_guarded(main)
