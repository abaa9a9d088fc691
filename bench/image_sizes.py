"""Training at other image sizes: speed at 64×64×1 and 128×128×3, and the peak memory of the train
stage on 20,000 colour images of 256×256 (3.9 GB as uint8, 15.7 GB as float32).

    python bench/image_sizes.py [--memory-images 20000] [--memory-seconds 240] [--segmenter-only]

Speed: one epoch of the pipeline's training (`aepipe.model.training.train`, batch 64, default
recipe) on patches of scikit-image's photographs (`pip install -e .[bench]`), images per second of
its steps. Memory: the train stage itself (`stages/train.py` in a fresh copy of the project) on a
prepared dataset of that many 256×256 colour crops (and 1,000 to validate on), its peak resident
memory (VmHWM: loading the images, the validation pass before the first step, then training steps)
read every second until --memory-seconds, then the stage is stopped: an epoch takes far longer on a
CPU, and the resident memory, recorded every 10 s, stops growing once the steps have begun. The same
for the defect segmenter's training (the train stage's second part on an inspection set) on as many
images held as the stage holds them (--segmenter-only: that alone, the other results kept). Results:
bench/results/image_sizes-cpu.json and a table on stdout.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from aepipe.atomic import write_json
from aepipe.data.dataset import Classes, Split, write_dataset
from aepipe.devices import to_pixels
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.segmenter_training import train_segmenter
from aepipe.model.training import train
from aepipe.params import load_params
from provenance import REPO, RESULTS, machine


def photo_crops(count: int, side: int, channels: int, seed: int = 0) -> np.ndarray:
    """uint8 crops of scikit-image's colour photographs (greyscale for 1 channel), resized to
    side."""
    from PIL import Image
    from skimage import data

    photos = [
        Image.fromarray(getattr(data, name)())
        for name in ("astronaut", "coffee", "chelsea", "rocket")
    ]
    rng = np.random.default_rng(seed)
    crops = np.empty((count, side, side) + ((3,) if channels == 3 else ()), np.uint8)
    for index in range(count):
        photo = photos[index % len(photos)]
        size = int(rng.integers(min(photo.size) // 3, min(photo.size)))
        left, top = (
            rng.integers(0, photo.width - size + 1),
            rng.integers(0, photo.height - size + 1),
        )
        crop = photo.crop((left, top, left + size, top + size)).resize((side, side))
        crops[index] = np.asarray(crop.convert("L" if channels == 1 else "RGB"))
    return crops


def speed(side: int, channels: int, images: int) -> dict:
    """Images per second of one epoch of training steps at this shape."""
    recipe = load_params(REPO / "params.yaml").train.model_copy(
        update={"epochs": 1, "device": "cpu"}
    )
    pixels = to_pixels(photo_crops(images + 64, side, channels), torch.device("cpu"))
    result = train(pixels[:images], pixels[images:], recipe, seed=0, log=lambda _: None)
    return {
        "side": side,
        "channels": channels,
        "images": images,
        "images_per_second": round(result.images_per_second, 1),
    }


def peak_memory(images: int, seconds: float) -> dict:
    """The train stage's peak resident memory on `images` 256×256 colour images, after `seconds`."""
    project = Path(tempfile.mkdtemp(prefix="image-sizes-")) / "aepipe"
    shutil.copytree(
        REPO,
        project,
        ignore=shutil.ignore_patterns(".git", ".venv", ".dvc", "data", "models", "dvclive"),
    )
    crops = photo_crops(images + 1000, 256, 3)
    write_dataset(
        project / "data" / "raw",
        Split(crops[:images], np.zeros(images, np.uint8)),
        Split(crops[images:], np.zeros(1000, np.uint8)),
        Classes(["photos"], "class", labelled=False),
    )
    del crops
    params = (project / "params.yaml").read_text()
    params = re.sub(r"dataset: mnist", "dataset: folder", params)
    params = re.sub(r"side: 28", "side: 256", re.sub(r"channels: 1", "channels: 3", params))
    (project / "params.yaml").write_text(params)
    stage = subprocess.Popen(
        [sys.executable, "stages/train.py"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": "src"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watched = watch(stage, seconds)
    shutil.rmtree(project.parent)
    return {
        "images": images,
        "side": 256,
        "channels": 3,
        "dataset_gb_uint8": round(images * 3 * 256**2 / 1e9, 2),
        **watched,
    }


def segmenter_peak_memory(images: int, seconds: float) -> dict:
    """The defect segmenter's training (the train stage's second part on an inspection set) on as
    many 256×256 colour images, held as the stage holds them: its peak resident memory after
    `seconds`."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--segmenter-child", str(images)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return {"images": images, "side": 256, "channels": 3, **watch(child, seconds)}


def train_segmenter_on_crops(images: int) -> None:
    pixels = to_pixels(photo_crops(images, 256, 3), torch.device("cpu"))
    recipe = load_params("params.yaml").train.model_copy(update={"segmenter_epochs": 1})
    train_segmenter(AutoEncoder(20, 256, 3), pixels, recipe, seed=0, log=lambda _: None)


def watch(process: subprocess.Popen, seconds: float) -> dict:
    """`process`'s peak resident memory (VmHWM, read every second) and its resident memory every 10
    s, until it ends or `seconds` have passed (then it is stopped)."""
    peak, resident, started = 0, [], time.perf_counter()
    while time.perf_counter() - started < seconds and process.poll() is None:
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = max(peak, int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)))
        if len(resident) <= (time.perf_counter() - started) // 10:
            resident.append(
                round(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024 / 1e9, 2)
            )
        time.sleep(1)
    still_running = process.poll() is None
    process.kill()
    return {
        "peak_rss_gb": round(peak * 1024 / 1e9, 2),
        "seconds_watched": seconds,
        "still_training": still_running,
        "rss_gb_every_10_s": resident,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-images", type=int, default=20_000)
    parser.add_argument("--memory-seconds", type=float, default=240)
    parser.add_argument(
        "--segmenter-only",
        action="store_true",
        help="measure only the segmenter's memory; keep the other results",
    )
    parser.add_argument("--segmenter-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.segmenter_child:  # the process segmenter_peak_memory watches
        train_segmenter_on_crops(args.segmenter_child)
        return
    results = (
        json.loads((RESULTS / "image_sizes-cpu.json").read_text())
        if args.segmenter_only
        else {
            "date": date.today().isoformat(),
            "machine": machine(f"{torch.get_num_threads()} threads"),
            "speed": [speed(64, 1, 2048), speed(128, 3, 512)],
            "memory": peak_memory(args.memory_images, args.memory_seconds),
        }
    )
    results["segmenter_memory"] = {
        "date": date.today().isoformat(),
        **segmenter_peak_memory(args.memory_images, args.memory_seconds),
    }
    write_json(RESULTS / "image_sizes-cpu.json", results)
    for row in results["speed"]:
        print(f"{row['channels']}×{row['side']}×{row['side']}: {row['images_per_second']} images/s")
    for name, memory in (
        ("train stage", results["memory"]),
        ("segmenter", results["segmenter_memory"]),
    ):
        print(
            f"{name} on {memory['images']} × 3×256×256: peak {memory['peak_rss_gb']} GB in "
            f"{memory['seconds_watched']:g} s; resident every 10 s: {memory['rss_gb_every_10_s']}"
        )


if __name__ == "__main__":
    main()
