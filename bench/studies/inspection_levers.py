"""Training levers on one inspection set, measured in one process: the training recipe (epochs,
latent size, loss, flips) against the image scores and maps the pipeline would compute from the
model.

    python bench/studies/inspection_levers.py SETS_DIR SET CHANNELS LATENT,EPOCHS,LOSS,FLIPS [...]

SETS_DIR holds the sets of bench/inspection_sets.py; FLIPS is f (flips) or - (none); e.g.
`python bench/studies/inspection_levers.py /tmp/sets brick 1 20,20,mse,- 20,100,mse,f`. For each
recipe it
trains with aepipe.model.training.train (params.yaml's recipe otherwise, seed 42, CPU) on train/good
but a 20 % calibration share, then reports, per map (error, ssim) and blur (σ 2, 4 pixels): each
defect kind's image ROC AUC of the map's peak against test/good, the pixel ROC AUC and AUPRO over
the test images; and each kind's ROC AUC of the mean error. One JSON line per recipe on stdout: the
faster way to choose what bench/inspection.py then runs through the pipeline.
"""

import json
import sys
import time

import numpy as np
import torch

from aepipe.anomaly.detection import aupro, image_roc_auc, pixel_roc_auc
from aepipe.anomaly.maps import anomaly_maps
from aepipe.data.folder import read_inspection_set
from aepipe.devices import to_pixels
from aepipe.gaussian_blur import smoothed
from aepipe.model.inference import errors_and_latents
from aepipe.model.training import train
from aepipe.params import load_params

SIDE = 64


def kind_aucs(scores: np.ndarray, labels: np.ndarray, good: np.ndarray) -> list[float]:
    """Each defect kind's ROC AUC against the good test images."""
    return [
        round(image_roc_auc(scores[good], scores[labels == kind]), 3)
        for kind in range(1, labels.max() + 1)
    ]


def measure(
    model, images: torch.Tensor, labels: np.ndarray, masks: np.ndarray, tested: np.ndarray
) -> dict:
    good = tested & (labels == 0)
    result = {"mean_error": kind_aucs(errors_and_latents(model, images)[0].numpy(), labels, good)}
    for kind in ("error", "ssim"):
        for sigma in (2.0, 4.0):
            maps = torch.cat(
                [smoothed(anomaly_maps(model, chunk, kind), sigma) for chunk in images.split(256)]
            ).numpy()
            result[f"{kind}-sigma{sigma:g}"] = {
                "kinds": kind_aucs(maps.reshape(len(maps), -1).max(axis=1), labels, good),
                "pixel_roc_auc": round(pixel_roc_auc(maps[tested], masks[tested] > 0), 3),
                "aupro": round(aupro(maps[tested], masks[tested] > 0), 3),
            }
    return result


def main() -> None:
    sets_dir, name, channels, recipes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    found = read_inspection_set(f"{sets_dir}/{name}", SIDE, channels, 0.2, 0, log=lambda _: None)
    cpu = torch.device("cpu")
    train_images, val_images = to_pixels(found.train.images, cpu), to_pixels(found.val.images, cpu)
    base = load_params("params.yaml").train
    for recipe in recipes:
        latent, epochs, loss, flips = recipe.split(",")
        params = base.model_copy(
            update={
                "latent_dim": int(latent),
                "epochs": int(epochs),
                "loss": loss,
                "flips": flips == "f",
                "device": "cpu",
            }
        )
        started = time.perf_counter()
        result = train(train_images, val_images[:256], params, seed=42, log=lambda _: None)
        seconds = round(time.perf_counter() - started)
        tested = found.calibration == 0
        print(
            json.dumps(
                {
                    "set": name,
                    "recipe": recipe,
                    "train_seconds": seconds,
                    "final_val_mse": result.history.val_losses[-1],
                    **measure(result.model, val_images, found.val.labels, found.masks, tested),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
