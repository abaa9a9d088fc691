"""Stage train: fit the autoencoder (and the defect segmenter, train.segmenter); write the model,
its loss history (DVCLive) and sample reconstructions."""

import time
from pathlib import Path

import numpy as np
import torch

from aepipe.atomic import atomic_path, write_json
from aepipe.data.dataset import load_classes, load_split
from aepipe.data.images import read_image_tree
from aepipe.devices import resolve_device, to_pixels
from aepipe.model.autoencoder import save_model
from aepipe.model.distributed import join, launched_by_torchrun, leave, relaunch_under_torchrun
from aepipe.model.loss_logger import LossLogger, WholeFileLive
from aepipe.model.segmenter_training import train_segmenter
from aepipe.model.training import train
from aepipe.params import ParamsError, check_against_classes, load_params, resolve_auto
from aepipe.run_guard import run_guarded

# Outside DVC's outputs (DVC deletes those before rerunning a stage), git- and dvc-ignored.
CHECKPOINT = Path(".checkpoints/train.pt")
# DVCLive's files: dvclive/metrics.json (epochs done and the latest validation MSE: `dvc exp show`
# reads it while a queued experiment trains), dvclive/plots/metrics/{train,val}_mse.tsv per epoch,
# and dvclive/plots/custom/batch_mse.json per step. dvc.yaml declares them itself (dvcyaml=None).
# dvclive/metrics.json is the publish stage's (git tracks it); this stage's own copy of the final
# numbers is the cached HEADLINE, which publish copies back, also when DVC restores this stage's
# outputs.
LIVE_DIR = "dvclive"
HEADLINE = "data/metrics/train.json"
# outside images for train.defects.sources.textures (a dep of this stage)
TEXTURES = Path("data/textures")


def _outside_textures(params) -> torch.Tensor | None:
    """data/textures' images in the model's shape, when the segmenter's defects take some from
    there: read before any training, so that an empty or unreadable folder stops the stage at
    once."""
    if not (params.train.segmenter and params.train.defects.sources.textures > 0):
        return None
    return to_pixels(
        read_image_tree(TEXTURES, params.data.side, params.data.channels), torch.device("cpu")
    )


def _add_segmenter(model, train_images, params, textures) -> dict:
    """Train the model's defect segmenter on its training images; its epochs and the seconds it
    took."""
    started = time.perf_counter()
    model.segmenter = train_segmenter(
        model, train_images, params.train, params.seed, textures=textures
    )
    return {
        "segmenter_epochs": params.train.segmenter_epochs,
        "segmenter_seconds": round(time.perf_counter() - started, 2),
    }


def _normal_splits(params) -> tuple:
    """Only normal images: in one-class mode the model must never see an anomalous digit."""
    splits = [
        load_split("data/raw", split, size).only_digits(params.data.normal_classes)
        for split, size in (("train", params.data.train_size), ("val", params.data.val_size))
    ]
    for name, data in zip(("training", "validation"), splits, strict=True):
        # the labels asked for exist, but the first data.train_size or val_size hold none
        if not len(data.labels):
            raise ParamsError(
                f"data.normal_classes = {list(params.data.normal_classes)}: no {name} images have "
                "these labels among the first data.train_size or data.val_size"
            )
    return tuple(splits)


def _write_report(result, params, workers: int, n_train: int, n_val: int, segmenter: dict) -> None:
    write_json(
        "reports/train.json",
        {
            "final_train_loss": result.history.train_losses[-1],
            "final_val_loss": result.history.val_losses[-1],
            "initial_val_loss": result.history.initial_val_loss,
            "epochs": len(result.history.train_losses),
            "noise_std": params.train.noise_std,
            "train_images": n_train,
            "val_images": n_val,
            "train_seconds": round(result.history.seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
            "device": result.device,
            "workers": workers,
            **segmenter,
        },
    )


def main() -> None:
    params = load_params("params.yaml")
    if params.train.workers > 1 and not launched_by_torchrun():
        relaunch_under_torchrun(params.train.workers)  # does not return
    device = resolve_device(params.train.device)
    world, own_gpu = join(device.type)
    device = own_gpu or device
    classes = load_classes("data/raw")
    check_against_classes(params, classes.names, classes.inspection, classes.labelled)
    params = resolve_auto(params, classes.inspection, classes.labelled)
    textures = _outside_textures(params)
    train_split, val_split = _normal_splits(params)
    # uint8 pixels, converted a batch at a time: a quarter of the memory of floats.
    train_images, val_images = (
        to_pixels(train_split.images, device),
        to_pixels(val_split.images, device),
    )
    logger = (
        LossLogger(WholeFileLive(LIVE_DIR, dvcyaml=None, save_dvc_exp=False), HEADLINE)
        if world.is_main
        else None
    )
    result = train(
        train_images,
        val_images,
        params.train,
        params.seed,
        checkpoint=CHECKPOINT,
        world=world,
        on_epoch=logger,
    )
    leave()
    if not world.is_main:
        return  # outputs are written once, by the main process

    segmenter = (
        _add_segmenter(result.model, train_images, params, textures)
        if params.train.segmenter
        else {}
    )
    logger.finish(result.history.seconds, segmenter.get("segmenter_seconds"))
    save_model(result.model, "models/model.pt")
    with atomic_path("data/train/reconstructions.npz") as tmp:
        np.savez_compressed(
            tmp, images=result.sample_images, reconstructions=result.sample_reconstructions
        )
    _write_report(
        result, params, world.size, len(train_split.labels), len(val_split.labels), segmenter
    )
    CHECKPOINT.unlink(missing_ok=True)  # every output is written: nothing left to resume


if __name__ == "__main__":
    run_guarded(main)
