"""Stage train: fit the autoencoder; write the model, its loss history and sample reconstructions."""

from pathlib import Path

import numpy as np
import pandas as pd

from aepipe.atomic import atomic_path, write_csv, write_json
from aepipe.devices import resolve_device, to_tensor
from aepipe.distributed import join, launched_by_torchrun, leave, relaunch_under_torchrun
from aepipe.errors import exit_on_error
from aepipe.mnist import load_split
from aepipe.model import save_model
from aepipe.params import load_params
from aepipe.training import train


# Outside DVC's outputs (DVC deletes those before rerunning a stage), git- and dvc-ignored.
CHECKPOINT = Path(".checkpoints/train.pt")


def main() -> None:
    params = load_params("params.yaml")
    if params.train.workers > 1 and not launched_by_torchrun():
        relaunch_under_torchrun(params.train.workers)  # does not return
    device = resolve_device(params.train.device)
    world, own_gpu = join(device.type)
    device = own_gpu or device
    # Only normal digits: in one-class mode the model must never see an anomalous digit.
    train_split = load_split("data/raw", "train", params.data.train_size).only_digits(params.data.normal_digits)
    val_split = load_split("data/raw", "val", params.data.val_size).only_digits(params.data.normal_digits)
    result = train(to_tensor(train_split.images, device), to_tensor(val_split.images, device), params.train, params.seed,
                   checkpoint=CHECKPOINT, world=world)
    leave()
    if not world.is_main:
        return  # outputs are written once, by the main process

    save_model(result.model, "models/model.pt")
    epochs, steps = result.batch_losses.shape
    write_csv(
        "data/train/batch_losses.csv",
        pd.DataFrame({
            "step": np.arange(1, epochs * steps + 1),
            "epoch": np.repeat(np.arange(1, epochs + 1), steps),
            "batch": np.tile(np.arange(1, steps + 1), epochs),
            "loss": result.batch_losses.ravel(),
        }),
    )
    write_csv(
        "data/train/epoch_losses.csv",
        pd.DataFrame({"epoch": np.arange(1, epochs + 1), "train_loss": result.train_losses, "val_loss": result.val_losses}),
    )
    with atomic_path("data/train/reconstructions.npz") as tmp:
        np.savez_compressed(tmp, images=result.sample_images, reconstructions=result.sample_reconstructions)
    write_json("metrics/train.json", {
        "final_train_loss": result.train_losses[-1],
        "final_val_loss": result.val_losses[-1],
        "initial_val_loss": result.initial_val_loss,
        "epochs": epochs,
        "train_images": len(train_split.labels),
        "val_images": len(val_split.labels),
        "train_seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "device": result.device,
        "workers": world.size,
    })
    CHECKPOINT.unlink(missing_ok=True)  # every output is written: nothing left to resume


if __name__ == "__main__":
    exit_on_error(main)
