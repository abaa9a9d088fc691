"""Scoring outside the pipeline: the torch path (`aepipe score`: model, fitted score, threshold)
against the exported detector (`aepipe score --onnx`: onnxruntime): cold start, and images per
second at batch 1 and 256, at 1×28×28 (the project's trained detector) and at an inspection size;
and `aepipe score --onnx` end to end on PNG files (decode, score, CSV) against decoding alone and
the detector alone, and its peak memory on 10,000 and 100,000 files.

    python bench/serve_speed.py PROJECT SERVE_PYTHON [--rounds 5]

PROJECT: a project after `dvc repro` (models/model.pt, models/anomaly_score.json,
reports/threshold.json, models/detector.onnx). SERVE_PYTHON: the python of a venv with only
`pip install aepipe[serve]` (numpy, Pillow, onnxruntime: no torch), where the detector's cold start
is measured. The inspection size is 3×64×64 with the inspection sets' score (map_max on the SSIM
map), an untrained model exported here: speed does not depend on the weights. Every measurement is
taken `--rounds` times, the two paths interleaved, and the median kept. End to end: 16,384 greyscale
PNGs of 64×64 (and 2,048, and one) scored by an untrained 1×64×64 detector (map_max on the error
map), the command run in this process (`aepipe.cli.main`), interleaved with decoding the
files alone and the detector alone on their pixels; memory: the command's peak resident memory (its
own process) on folders of 10,000 and 100,000 such files. Results:
bench/results/serve_speed-cpu.json.
"""

import argparse
import json
import shutil
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

from aepipe.anomaly.detector import Detector
from aepipe.anomaly.scores import FittedScore, MapSpec
from aepipe.atomic import write_json
from aepipe.deploy.export import export_detector
from aepipe.deploy.onnx_detector import OnnxDetector
from aepipe.model.autoencoder import AutoEncoder, load_model
from provenance import RESULTS

RESULT = RESULTS / "serve_speed-cpu.json"
BATCH_1_IMAGES, BATCH_256_IMAGES = 200, 2048


def install_megabytes(python: str) -> float:
    """The size on disk of the environment `python` runs in (its prefix: the venv), in MB."""
    prefix = Path(
        subprocess.run(
            [python, "-c", "import sys; print(sys.prefix)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return round(
        sum(
            path.stat().st_size
            for path in prefix.rglob("*")
            if path.is_file() and not path.is_symlink()
        )
        / 1e6
    )


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
    images = np.random.default_rng(0).random(
        (BATCH_256_IMAGES, channels, side, side), dtype=np.float32
    )
    seen = {f"{path}_batch_{batch}": [] for path in ("torch", "onnx") for batch in (1, 256)}
    for _ in range(rounds):
        for batch, count in ((1, BATCH_1_IMAGES), (256, BATCH_256_IMAGES)):
            seen[f"torch_batch_{batch}"].append(
                images_per_second(torch_score, images[:count], batch)
            )
            seen[f"onnx_batch_{batch}"].append(images_per_second(onnx_score, images[:count], batch))
    return {name: round(statistics.median(values), 1) for name, values in seen.items()}


def torch_scorer(model: AutoEncoder, fitted: FittedScore):
    detector = Detector(model, fitted)
    return lambda images: detector.score(torch.from_numpy(images)).scores


def measure_project(project: Path, serve_python: str, rounds: int) -> dict:
    image = Path(tempfile.mkdtemp()) / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    aepipe_torch = [str(Path(sys.executable).parent / "aepipe"), "score", str(image)]
    aepipe_onnx = [
        str(Path(serve_python).parent / "aepipe"),
        "score",
        str(image),
        "--onnx",
        "models/detector.onnx",
    ]
    starts = {"torch": [], "onnx": []}
    for _ in range(rounds):
        starts["torch"].append(cold_start(aepipe_torch, project))
        starts["onnx"].append(cold_start(aepipe_onnx, project))
    model = load_model(project / "models" / "model.pt")
    fitted = FittedScore.from_dict(
        json.loads((project / "models" / "anomaly_score.json").read_text())
    )
    detector = OnnxDetector(project / "models" / "detector.onnx")
    return {
        "shape": "1x28x28",
        "score": fitted.method,
        "cold_start_seconds": {
            path: round(statistics.median(times), 3) for path, times in starts.items()
        },
        "images_per_second": throughput(torch_scorer(model, fitted), detector, 1, 28, rounds),
    }


def measure_inspection_size(rounds: int, channels: int = 3, side: int = 64) -> dict:
    fitted = FittedScore("map_max", maps=MapSpec("ssim", 2.0))
    model, path = untrained_detector(channels, side, fitted)
    return {
        "shape": f"{channels}x{side}x{side}",
        "score": "map_max (ssim map)",
        "images_per_second": throughput(
            torch_scorer(model, fitted), OnnxDetector(path), channels, side, rounds
        ),
    }


def untrained_detector(channels: int, side: int, fitted: FittedScore) -> tuple[AutoEncoder, Path]:
    """An untrained model of this shape and its exported detector: speed does not depend on the
    weights."""
    torch.manual_seed(0)
    model = AutoEncoder(20, side, channels).eval()
    path = Path(tempfile.mkdtemp()) / "detector.onnx"
    tiles = (
        {"tile": str(fitted.tiling.tile), "overlap": str(fitted.tiling.overlap)}
        if fitted.tiling
        else {}
    )
    export_detector(
        Detector(model, fitted, 0.5),
        channels,
        side,
        path,
        {
            "side": str(side),
            "channels": str(channels),
            "score": fitted.method,
            "threshold": "0.5",
            **tiles,
        },
    )
    return model, path


def png_folder(count: int, side: int) -> Path:
    """`count` greyscale PNGs of side × side (random pixels), in a new folder."""
    folder = Path(tempfile.mkdtemp()) / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(
            folder / f"{index:06d}.png"
        )
    return folder


def measure_tiled_scans(
    rounds: int, tile: int = 64, overlap: int = 16, scan: int = 512, count: int = 32
) -> dict:
    """Scans per second of `aepipe score --onnx` on `count` scan × scan PNG files through a detector
    of tiles (decode, cut, score, stitch, CSV), against the detector alone on the same tiles;
    interleaved."""
    from aepipe.data.tiles import Tiling

    tiling = Tiling(tile, overlap)
    _, detector_path = untrained_detector(
        1, tile, FittedScore("map_max", maps=MapSpec("error", 1.0), tiling=tiling)
    )
    folder, detector = png_folder(count, scan), OnnxDetector(detector_path)
    tiles = tiling.cut(np.random.default_rng(0).random((scan, scan), dtype=np.float32))[:, None]
    seen = {"end_to_end": [], "detector_alone": []}
    for _ in range(rounds):
        seen["end_to_end"].append(count / seconds_to_score(folder, detector_path))
        started = time.perf_counter()
        for _ in range(count):
            detector(tiles)
        seen["detector_alone"].append(count / (time.perf_counter() - started))
    rates = {name: round(statistics.median(values), 2) for name, values in seen.items()}
    return {
        "scan": f"1x{scan}x{scan}",
        "tile": tile,
        "overlap": overlap,
        "tiles_per_scan": len(tiles),
        "files": count,
        "scans_per_second": rates,
        "end_to_end_share_of_detector": round(rates["end_to_end"] / rates["detector_alone"], 3),
    }


def onnx_score_arguments(folder: Path, detector_path: Path) -> list[str]:
    """`aepipe score --onnx` over a folder, its CSV written beside it."""
    return [
        "score",
        str(folder),
        "--onnx",
        str(detector_path),
        "--out",
        str(folder.parent / "scores.csv"),
    ]


def seconds_to_score(folder: Path, detector_path: Path) -> float:
    """How long `aepipe score --onnx` takes over a folder, its CSV written beside it."""
    from aepipe.cli import main as aepipe

    started = time.perf_counter()
    aepipe(onnx_score_arguments(folder, detector_path))
    return time.perf_counter() - started


def measure_end_to_end(
    rounds: int, side: int = 64, counts: tuple[int, int] = (2048, 16384)
) -> dict:
    """Images per second of `aepipe score --onnx` on PNG files (decode, score, CSV) on a short run
    and a long one (`counts`: what the first and last batches cost alone, and the detector's
    loading, weigh less in a long run), and on one file (its fixed cost, in seconds); of decoding
    the long run's files alone (as it reads them) and of the detector alone on their pixels (batch 1
    and 256); interleaved."""
    from aepipe.deploy.inputs import listed, read_images

    _, detector_path = untrained_detector(
        1, side, FittedScore("map_max", maps=MapSpec("error", 1.0))
    )
    short, long = png_folder(counts[0], side), png_folder(counts[1], side)
    single, detector = png_folder(1, side), OnnxDetector(detector_path)
    pixels = np.stack([item.pixels for item in read_images(listed([long]), side, 1, False, True)])[
        :, None
    ]

    def end_to_end(folder: Path) -> float:
        return seconds_to_score(folder, detector_path)

    seen = {
        "end_to_end": [],
        f"end_to_end_{counts[0]}_files": [],
        "decode": [],
        "detector_batch_1": [],
        "detector_batch_256": [],
    }
    one_file = []
    for _ in range(rounds):
        seen["end_to_end"].append(counts[1] / end_to_end(long))
        seen[f"end_to_end_{counts[0]}_files"].append(counts[0] / end_to_end(short))
        one_file.append(end_to_end(single))
        started = time.perf_counter()
        sum(1 for _ in read_images(listed([long]), side, 1, False, True))
        seen["decode"].append(counts[1] / (time.perf_counter() - started))
        seen["detector_batch_1"].append(images_per_second(detector, pixels[:BATCH_1_IMAGES], 1))
        seen["detector_batch_256"].append(images_per_second(detector, pixels, 256))
    rates = {name: round(statistics.median(values), 1) for name, values in seen.items()}
    detector_rate = rates["detector_batch_256"]
    return {
        "shape": f"1x{side}x{side}",
        "files": counts[1],
        "images_per_second": rates,
        "one_file_seconds": round(statistics.median(one_file), 4),
        "end_to_end_share_of_detector_batch_256": round(rates["end_to_end"] / detector_rate, 3),
        f"end_to_end_{counts[0]}_files_share": round(
            rates[f"end_to_end_{counts[0]}_files"] / detector_rate, 3
        ),
    }


# `aepipe` as its console script runs it, printing at exit the peak resident memory of its own
# process (VmHWM: a new process image starts its own; wait4's ru_maxrss would keep this process's
# from the fork).
PEAK_REPORTING_AEPIPE = """
import atexit, sys
def peak():
    status = open("/proc/self/status").read()
    print("VmHWM", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
atexit.register(peak)
from aepipe.cli import main
main(sys.argv[1:])
"""


def peak_memory_mb(arguments: list[str]) -> float:
    """The peak resident memory of `aepipe ARGUMENTS`, its own process, in MB."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_REPORTING_AEPIPE, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    return round(int(done.stderr.split("VmHWM")[-1].split()[0]) / 1024, 1)  # kB


def measure_memory(side: int = 64, counts: tuple[int, ...] = (10_000, 100_000)) -> dict:
    """Peak memory of `aepipe score --onnx` (its own process) scoring folders of `counts` PNG
    files."""
    _, detector_path = untrained_detector(
        1, side, FittedScore("map_max", maps=MapSpec("error", 1.0))
    )
    peaks = {}
    for count in counts:
        folder = png_folder(count, side)
        peaks[str(count)] = peak_memory_mb(onnx_score_arguments(folder, detector_path))
        shutil.rmtree(folder.parent)
    return {
        "shape": f"1x{side}x{side}",
        "peak_memory_mb": peaks,
        "ratio": round(peaks[str(counts[-1])] / peaks[str(counts[0])], 3),
    }


ONE_PART = {"end_to_end": measure_end_to_end, "tiled_scans": measure_tiled_scans}  # --only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("serve_python")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only",
        choices=sorted(ONE_PART),
        help="measure this alone, keeping the file's other results",
    )
    args = parser.parse_args()
    if args.only:
        write_json(
            RESULT,
            {
                **json.loads(RESULT.read_text()),
                args.only: ONE_PART[args.only](args.rounds),
                f"{args.only}_date": date.today().isoformat(),
            },
        )
        return
    rows = [
        measure_project(args.project.resolve(), args.serve_python, args.rounds),
        measure_inspection_size(args.rounds),
    ]
    sizes = {
        "serve_only_mb": install_megabytes(args.serve_python),
        "this_install_mb": install_megabytes(sys.executable),
    }
    streaming = {
        "end_to_end": measure_end_to_end(args.rounds),
        "memory": measure_memory(),
        "tiled_scans": measure_tiled_scans(args.rounds),
    }
    write_json(
        RESULT,
        {
            "date": date.today().isoformat(),
            "script": "bench/serve_speed.py",
            "threads": torch.get_num_threads(),
            "machine": "2-core x86-64 CPU (AMD EPYC, AVX-512)",
            "install": sizes,
            "rows": rows,
            **streaming,
        },
    )
    print(json.dumps({"rows": rows, **streaming}, indent=1))


if __name__ == "__main__":
    main()
