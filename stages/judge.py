"""Stage judge: train the digit classifier that judges the autoencoder's images; its test
accuracy."""

import numpy as np
import torch

from aepipe.atomic import write_json
from aepipe.data.dataset import load_classes, load_split
from aepipe.devices import resolve_device, to_pixels
from aepipe.model.judge import NO_CLASSES, save_judge, train_judge
from aepipe.params import load_params
from aepipe.run_guard import run_guarded


def main() -> None:
    params = load_params("params.yaml")
    classes = load_classes("data/raw")
    # All classes, whatever data.normal_classes says: the judge knows every class the autoencoder
    # may draw.
    train = load_split("data/raw", "train", params.judge.train_size)
    if not classes.labelled or len(np.unique(train.labels)) < 2:
        # Nothing to tell apart (a folder without classes, an inspection set's good images): no
        # judge, and the later stages report what it would measure as not applicable (null).
        save_judge(None, "models/judge.pt")
        write_json("data/metrics/judge.json", {"judge_accuracy": None})
        write_json("reports/judge.json", {"judge": f"does not apply: {NO_CLASSES}"})
        return
    device = resolve_device(params.train.device)
    val = load_split("data/raw", "val")
    result = train_judge(
        to_pixels(train.images, device),
        torch.as_tensor(train.labels.astype(np.int64), device=device),
        to_pixels(val.images, device),
        val.labels,
        len(classes.names),
        params.judge,
    )
    save_judge(result.judge, "models/judge.pt")
    write_json("data/metrics/judge.json", {"judge_accuracy": result.epoch_accuracies[-1]})
    write_json(
        "reports/judge.json",
        {
            "accuracy_per_epoch": result.epoch_accuracies,
            "train_images": len(train.labels),
            "val_images": len(val.labels),
            "seconds": round(result.seconds, 2),
            "device": str(device),
        },
    )


if __name__ == "__main__":
    run_guarded(main)
