"""Scoring outside the pipeline: the torch path (`aepipe score`: model, fitted score, threshold) against
the exported detector (`aepipe score --onnx`: onnxruntime): cold start, and images per second at
batch 1 and 256, at 1×28×28 (the project's trained detector) and at an inspection size.

    python bench/serve_speed.py PROJECT SERVE_PYTHON [--rounds 5]

PROJECT: a project after `dvc repro` (models/model.pt, models/anomaly_score.json,
reports/threshold.json, models/detector.onnx). SERVE_PYTHON: the python of a venv with only
`pip install aepipe[serve]` (numpy, Pillow, onnxruntime: no torch), where the detector's cold start
is measured. The inspection size is 3×64×64 with the inspection sets' score (map_max on the SSIM map),
an untrained model exported here: speed does not depend on the weights. Every measurement is taken
`--rounds` times, the two paths interleaved, and the median kept. Results: bench/results/serve_speed-cpu.json.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aepipe.atomic import write_json
from aepipe.deploy.export import Detector, export_detector
from aepipe.model.autoencoder import AutoEncoder, load_model
from aepipe.anomaly.scores import FittedScore, MapSpec, image_features
from aepipe.deploy.serve import OnnxDetector

RESULTS = Path(__file__).resolve().parent / "results" / "serve_speed-cpu.json"
BATCH_1_IMAGES, BATCH_256_IMAGES = 200, 2048


def install_megabytes(python: str) -> float:
    """The size on disk of the environment `python` runs in (its prefix: the venv), in MB."""
    prefix = Path(subprocess.run([python, "-c", "import sys; print(sys.prefix)"], check=True, capture_output=True,
                                 text=True).stdout.strip())
    return round(sum(path.stat().st_size for path in prefix.rglob("*") if path.is_file() and not path.is_symlink()) / 1e6)


def cold_start(command: list[str], cwd: Path) -> float:
    """Seconds from starting the process to its exit, having scored one image."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def images_per_second(score, images: np.ndarray, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        score(images[start : start + batch])
    return len(images) / (time.perf_counter() - started)


def throughput(torch_score, onnx_score, channels: int, side: int, rounds: int) -> dict:
    """Images per second of both paths at batch 1 and 256, interleaved round by round; medians."""
    images = np.random.default_rng(0).random((BATCH_256_IMAGES, channels, side, side), dtype=np.float32)
    seen = {f"{path}_batch_{batch}": [] for path in ("torch", "onnx") for batch in (1, 256)}
    for _ in range(rounds):
        for batch, count in ((1, BATCH_1_IMAGES), (256, BATCH_256_IMAGES)):
            seen[f"torch_batch_{batch}"].append(images_per_second(torch_score, images[:count], batch))
            seen[f"onnx_batch_{batch}"].append(images_per_second(onnx_score, images[:count], batch))
    return {name: round(statistics.median(values), 1) for name, values in seen.items()}


def torch_scorer(model: AutoEncoder, fitted: FittedScore):
    return lambda images: fitted.score(image_features(model, torch.from_numpy(images), fitted.maps))


def measure_project(project: Path, serve_python: str, rounds: int) -> dict:
    image = Path(tempfile.mkdtemp()) / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    aepipe_torch = [str(Path(sys.executable).parent / "aepipe"), "score", str(image)]
    aepipe_onnx = [str(Path(serve_python).parent / "aepipe"), "score", str(image), "--onnx", "models/detector.onnx"]
    starts = {"torch": [], "onnx": []}
    for _ in range(rounds):
        starts["torch"].append(cold_start(aepipe_torch, project))
        starts["onnx"].append(cold_start(aepipe_onnx, project))
    model = load_model(project / "models" / "model.pt")
    fitted = FittedScore.from_dict(json.loads((project / "models" / "anomaly_score.json").read_text()))
    detector = OnnxDetector(project / "models" / "detector.onnx")
    return {"shape": "1x28x28", "score": fitted.method,
            "cold_start_seconds": {path: round(statistics.median(times), 3) for path, times in starts.items()},
            "images_per_second": throughput(torch_scorer(model, fitted), detector, 1, 28, rounds)}


def measure_inspection_size(rounds: int, channels: int = 3, side: int = 64) -> dict:
    torch.manual_seed(0)
    model = AutoEncoder(20, side, channels).eval()
    fitted = FittedScore("map_max", maps=MapSpec("ssim", 2.0))
    path = Path(tempfile.mkdtemp()) / "detector.onnx"
    export_detector(Detector(model, fitted, 0.5), channels, side, path, {"side": str(side), "channels": str(channels),
                                                                         "score": "map_max", "threshold": "0.5"})
    return {"shape": f"{channels}x{side}x{side}", "score": "map_max (ssim map)",
            "images_per_second": throughput(torch_scorer(model, fitted), OnnxDetector(path), channels, side, rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("serve_python")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = [measure_project(args.project.resolve(), args.serve_python, args.rounds), measure_inspection_size(args.rounds)]
    sizes = {"serve_only_mb": install_megabytes(args.serve_python), "this_install_mb": install_megabytes(sys.executable)}
    write_json(RESULTS, {"date": date.today().isoformat(), "script": "bench/serve_speed.py", "threads": torch.get_num_threads(),
                         "machine": "2-core x86-64 CPU (AMD EPYC, AVX-512)", "install": sizes, "rows": rows})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
