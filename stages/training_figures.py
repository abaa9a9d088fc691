"""Stage training_figures: reconstructions epoch by epoch, and the loss curves."""

import numpy as np
import pandas as pd

from aepipe.errors import exit_on_error
from aepipe.plots import loss_curves, reconstruction_grid, save


def main() -> None:
    epochs = pd.read_csv("data/train/epoch_losses.csv")
    batches = pd.read_csv("data/train/batch_losses.csv")
    batch_loss = batches.pivot(index="epoch", columns="batch", values="loss").to_numpy()
    samples = np.load("data/train/reconstructions.npz")
    save(reconstruction_grid(samples["images"], samples["reconstructions"]), "plots/reconstructions.png")
    save(loss_curves(epochs["train_loss"].to_numpy(), epochs["val_loss"].to_numpy(), batch_loss), "plots/loss_curves.png")


if __name__ == "__main__":
    exit_on_error(main)
