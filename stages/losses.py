"""Stage losses: one pass of the trained model over both splits, and over the synthetic anomalies.
Reconstruction loss per batch (normal images of both splits) and per image (every validation image,
marked normal or not; every corruption of each normal test image), and the latent vector of every
image of both splits."""

import numpy as np
import pandas as pd

from aepipe.anomaly import calibration_split
from aepipe.atomic import atomic_path, write_csv
from aepipe.corruptions import corrupt
from aepipe.devices import resolve_device, to_tensor
from aepipe.errors import exit_on_error
from aepipe.mnist import load_split
from aepipe.model import load_model
from aepipe.params import load_params
from aepipe.reconstruction import batch_means, errors_and_latents, per_image_errors


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device)
    latents_of = {}
    for split, limit in (("train", params.data.train_size), ("val", params.data.val_size)):
        data = load_split("data/raw", split, limit)
        images = to_tensor(data.images, device)
        errors, latents = (tensor.cpu().numpy() for tensor in errors_and_latents(model, images))
        normal = np.isin(data.labels, params.data.normal_digits)
        # Batches of the training batch size in a seeded random order, as the seed's shuffled
        # DataLoader: MNIST's files are not shuffled (the test set's halves come from different writers).
        normal_errors = errors[normal]
        order = np.random.default_rng(params.seed).permutation(len(normal_errors))
        batches = batch_means(normal_errors[order], params.train.batch_size)
        write_csv(f"data/losses/{split}_batches.csv", pd.DataFrame({"batch": np.arange(1, len(batches) + 1), "loss": batches}))
        latents_of[split] = latents, data.labels
        if split == "val":
            write_csv("data/losses/val_images.csv",
                      pd.DataFrame({"index": np.arange(len(errors)), "label": data.labels, "normal": normal, "loss": errors}))
            # The synthetic anomalies are made from the normal images that test the threshold, not
            # those that set it; scored here, so that evaluate needs neither the model nor torch.
            normal_index = np.flatnonzero(normal)
            _, test = calibration_split(len(normal_index), params.anomaly.calibration_fraction, params.seed)
            normal_test = normal_index[test]
            corrupted = corrupt(images[normal_test], params.anomaly.corruptions, params.seed)
            write_csv("data/losses/corrupted_images.csv", pd.DataFrame({
                "index": normal_test, **{name: per_image_errors(model, batch).cpu().numpy() for name, batch in corrupted.items()}}))
    (train_latents, train_labels), (val_latents, val_labels) = latents_of["train"], latents_of["val"]
    with atomic_path("data/latents.npz") as tmp:
        np.savez(tmp, latents=val_latents, labels=val_labels, train_latents=train_latents, train_labels=train_labels)


if __name__ == "__main__":
    exit_on_error(main)
