"""Training speed: the seed notebook's loop vs the pipeline's own training code, same model and
recipe.

    python bench/train_speed.py [--epochs 20] [--device auto|cpu|cuda]

Each loop runs in its own process (so one's global settings and peak memory don't leak into the
other) for the same number of epochs of batch-64 steps over real MNIST, read from data/raw (or
downloaded from $AEPIPE_MNIST_MIRROR). Both end with the validation MSE of the final model,
measured the same way. Results: bench/results/train_speed-<device>.json and a table on stdout.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.data.mnist import DATASETS, download_dataset
from aepipe.devices import resolve_device, to_tensor
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import mean_squared_error
from aepipe.model.training import train
from aepipe.params import load_params
from provenance import REPO, RESULTS, machine


def raw_mnist_dir() -> Path:
    raw = REPO / "data" / "raw"
    if all((raw / name).is_file() for name in DATASETS["mnist"].sha256):
        return raw
    mirror = os.environ.get("AEPIPE_MNIST_MIRROR")
    if not mirror:
        sys.exit("bench: no data/raw; run `dvc repro download` or set AEPIPE_MNIST_MIRROR")
    raw = Path(tempfile.mkdtemp()) / "raw"
    download_dataset(raw, [mirror], timeout_s=30)
    return raw


def seed_loop(raw: Path, epochs: int, device: torch.device, seed: int) -> dict:
    """The notebook's way: torchvision dataset + ToTensor + shuffled DataLoader, loss.item() every
    step."""
    from torchvision import datasets, transforms

    root = Path(tempfile.mkdtemp())
    (root / "MNIST").mkdir()
    (root / "MNIST" / "raw").symlink_to(raw.resolve())
    train_set = datasets.MNIST(root, train=True, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
    torch.manual_seed(seed)
    model = AutoEncoder(latent_dim=20).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.MSELoss()
    epoch_seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        losses = []
        for data, _label in loader:
            data = data.to(device)
            reconstruction, _ = model(data)
            loss = criterion(reconstruction, data)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_seconds.append(time.perf_counter() - started)
    return {"epoch_seconds": epoch_seconds, "model": model, "images": len(train_set)}


def aepipe_loop(raw: Path, epochs: int, device: torch.device, seed: int) -> dict:
    """The pipeline's own code path: the same function the train stage calls."""
    params = load_params(REPO / "params.yaml").train.model_copy(update={"epochs": epochs})
    train_images = to_tensor(load_split(raw, "train").images, device)
    val_images = to_tensor(load_split(raw, "val").images, device)
    started = time.perf_counter()
    result = train(train_images, val_images, params, seed, log=lambda line: None)
    return {
        "seconds_with_validation": time.perf_counter() - started,
        "train_seconds": len(train_images) * epochs / result.images_per_second,
        "model": result.model,
        "images": len(train_images),
    }


def run_one(loop: str, epochs: int, device_name: str) -> dict:
    device = resolve_device(device_name)
    raw = raw_mnist_dir()
    seed = 42
    outcome = (seed_loop if loop == "seed" else aepipe_loop)(raw, epochs, device, seed)
    train_seconds = sum(outcome["epoch_seconds"]) if loop == "seed" else outcome["train_seconds"]
    val_images = to_tensor(load_split(raw, "val").images, device)
    result = {
        "loop": loop,
        "epochs": epochs,
        "train_seconds": round(train_seconds, 2),
        "images_per_second": round(outcome["images"] * epochs / train_seconds, 1),
        "final_val_mse": mean_squared_error(outcome["model"], val_images),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(device),
    }
    if loop == "seed":
        result["epoch_seconds"] = [round(s, 2) for s in outcome["epoch_seconds"]]
    if device.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    # one loop, in a child process
    parser.add_argument("--only", choices=("seed", "aepipe"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only, args.epochs, args.device)))
        return

    runs = {}
    for loop in ("seed", "aepipe"):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--only",
                loop,
                "--epochs",
                str(args.epochs),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        runs[loop] = json.loads(child.stdout.strip().splitlines()[-1])
    seed, ours = runs["seed"], runs["aepipe"]
    report = {
        "date": date.today().isoformat(),
        "machine": machine(
            torch.cuda.get_device_name() if ours["device"].startswith("cuda") else None
        ),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": f"python bench/train_speed.py --epochs {args.epochs} --device {args.device}",
        "speedup": round(ours["images_per_second"] / seed["images_per_second"], 2),
        "val_mse_relative_difference": round(ours["final_val_mse"] / seed["final_val_mse"] - 1, 4),
        "seed_loop": seed,
        "aepipe_loop": ours,
    }
    write_json(RESULTS / f"train_speed-{ours['device'].split(':')[0]}.json", report)
    print(
        "| loop | epochs | train seconds | images/s | final val MSE | peak RSS MB "
        "|\n|---|---|---|---|---|---|"
    )
    for name, run in (("seed notebook", seed), ("aepipe", ours)):
        print(
            f"| {name} | {run['epochs']} | {run['train_seconds']} | "
            f"{run['images_per_second']:,.0f} | {run['final_val_mse']:.5f} | "
            f"{run['peak_rss_mb']:,.0f} |"
        )
    print(
        f"speedup {report['speedup']}x; val MSE difference "
        f"{report['val_mse_relative_difference']:+.2%}"
    )


if __name__ == "__main__":
    main()
