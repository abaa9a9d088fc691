"""Stage embed: the latent vector of every validation image, with its label."""

import numpy as np

from aepipe.atomic import atomic_path
from aepipe.devices import resolve_device, to_tensor
from aepipe.errors import exit_on_error
from aepipe.latent import encode
from aepipe.mnist import load_split
from aepipe.model import load_model
from aepipe.params import load_params


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device)
    val = load_split("data/raw", "val", params.data.val_size)
    latents = encode(model, to_tensor(val.images, device))
    with atomic_path("data/latents.npz") as tmp:
        np.savez(tmp, latents=latents, labels=val.labels)


if __name__ == "__main__":
    exit_on_error(main)
