"""Stage losses: reconstruction loss of the trained model per batch (normal images of both splits) and
per image (every validation image, marked normal or not)."""

import numpy as np
import pandas as pd

from aepipe.atomic import write_csv
from aepipe.devices import resolve_device, to_tensor
from aepipe.errors import exit_on_error
from aepipe.mnist import load_split
from aepipe.model import load_model
from aepipe.params import load_params
from aepipe.reconstruction import batch_means, per_image_errors


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device)
    for split, limit in (("train", params.data.train_size), ("val", params.data.val_size)):
        data = load_split("data/raw", split, limit)
        errors = per_image_errors(model, to_tensor(data.images, device)).cpu().numpy()
        normal = np.isin(data.labels, params.data.normal_digits)
        # Batches of the training batch size in a seeded random order, as the seed's shuffled
        # DataLoader: MNIST's files are not shuffled (the test set's halves come from different writers).
        normal_errors = errors[normal]
        order = np.random.default_rng(params.seed).permutation(len(normal_errors))
        batches = batch_means(normal_errors[order], params.train.batch_size)
        write_csv(f"data/losses/{split}_batches.csv", pd.DataFrame({"batch": np.arange(1, len(batches) + 1), "loss": batches}))
        if split == "val":
            write_csv("data/losses/val_images.csv",
                      pd.DataFrame({"index": np.arange(len(errors)), "label": data.labels, "normal": normal, "loss": errors}))


if __name__ == "__main__":
    exit_on_error(main)
