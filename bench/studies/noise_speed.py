"""Training speed of the denoising autoencoder against the plain one: train.noise_std S against 0,
interleaved in one process (same machine, same minutes), on all 60,000 MNIST training images.

    python bench/studies/noise_speed.py [--noise-std 0.5] [--epochs 1] [--rounds 3]
                                        [--device auto|cpu|cuda]

Results: bench/studies/results/noise_speed-<device>.json and a line on stdout.
"""

import argparse
import statistics
from datetime import date

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.devices import resolve_device, to_tensor
from aepipe.model.training import train
from aepipe.params import load_params
from provenance import STUDY_RESULTS
from train_speed import REPO, raw_mnist_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-std", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    raw = raw_mnist_dir()
    images = (
        to_tensor(load_split(raw, "train").images, device),
        to_tensor(load_split(raw, "val").images, device),
    )
    plain = load_params(REPO / "params.yaml").train.model_copy(
        update={"epochs": args.epochs, "noise_std": 0.0}
    )
    rates = {0.0: [], args.noise_std: []}
    for _ in range(args.rounds):
        for noise_std in rates:
            result = train(
                *images,
                plain.model_copy(update={"noise_std": noise_std}),
                seed=42,
                log=lambda line: None,
            )
            rates[noise_std].append(round(result.images_per_second, 1))
    medians = {noise_std: statistics.median(values) for noise_std, values in rates.items()}
    slowdown = medians[0.0] / medians[args.noise_std] - 1
    write_json(
        STUDY_RESULTS / f"noise_speed-{device.type}.json",
        {
            "date": date.today().isoformat(),
            "device": str(device),
            "epochs_per_run": args.epochs,
            "images_per_second": {
                f"noise_std {noise_std:g}": values for noise_std, values in rates.items()
            },
            "median_images_per_second": {
                f"noise_std {noise_std:g}": value for noise_std, value in medians.items()
            },
            "epoch_time_increase": round(slowdown, 4),
        },
    )
    print(
        f"images/s, median of {args.rounds} interleaved runs: plain {medians[0.0]:,.0f}, "
        f"noise_std {args.noise_std:g} {medians[args.noise_std]:,.0f}: epoch time {slowdown:+.1%}"
    )


if __name__ == "__main__":
    main()
