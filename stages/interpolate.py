"""Stage interpolate: decode the straight line between the latents of two validation images."""

import numpy as np
import torch

from aepipe.data.dataset import load_split
from aepipe.devices import resolve_device, to_numpy_images
from aepipe.figures.plots import interpolation_strip, save
from aepipe.model.autoencoder import load_model
from aepipe.model.inference import interpolate
from aepipe.params import fit_validation_set, load_params
from aepipe.run_guard import run_guarded


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device, images=(params.data.channels, params.data.side))
    # (N, H, W) or, in colour, (N, H, W, C)
    images = load_split("data/raw", "val", params.data.val_size).images / 255
    params = fit_validation_set(params, len(images))
    start, end = params.interpolate.start, params.interpolate.end
    latents = torch.from_numpy(np.load("data/latents.npz")["latents"]).to(device)
    decoded = interpolate(model, latents[start], latents[end], params.interpolate.steps)
    save(
        interpolation_strip(images[start], to_numpy_images(decoded), images[end], start, end),
        "plots/interpolation.png",
    )


if __name__ == "__main__":
    run_guarded(main)
