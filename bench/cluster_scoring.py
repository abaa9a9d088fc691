"""`aepipe score` on a Dask cluster against one process: the same images, the same detector, the
CSVs compared byte for byte, the runs interleaved.

    python bench/cluster_scoring.py [--rounds 3] [--images 60000]

Scores MNIST digits (the pipeline's data/raw, train then val; `make repro` first) with the
repository's models, on the torch path and with --onnx, each in one process and with --scheduler on
a `dask scheduler` and two one-thread `dask worker`s of this machine. Results:
bench/results/cluster_scoring.json and a table on stdout.
"""

import argparse
import filecmp
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from provenance import REPO, RESULTS, command_env, machine

BIN = Path(sys.executable).parent
WORKERS = 2
PATHS = {"torch": [], "onnx": ["--onnx", "models/detector.onnx"]}


def digits(count: int, folder: Path) -> Path:
    raw = REPO / "data" / "raw"
    images = np.concatenate([load_split(raw, "train").images, load_split(raw, "val").images])
    path = folder / "digits.npy"
    np.save(path, images[:count])
    return path


def start_cluster(folder: Path) -> tuple[str, list[subprocess.Popen]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    log = (folder / "dask.log").open("ab")
    scheduler = [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    processes = [subprocess.Popen([*scheduler, "--no-dashboard"], stdout=log, stderr=log)]
    time.sleep(3)
    worker = [BIN / "dask", "worker", address, "--nthreads", "1", "--nworkers", str(WORKERS)]
    processes.append(subprocess.Popen([*worker, "--no-dashboard"], stdout=log, stderr=log))
    return address, processes


def score(images: Path, path: str, out: Path, cluster: list[str]) -> float:
    command = [BIN / "aepipe", "score", str(images), *PATHS[path], "--no-watch", "--out", str(out)]
    started = time.perf_counter()
    subprocess.run([*command, *cluster], cwd=REPO, env=command_env(), check=True)
    return round(time.perf_counter() - started, 2)


def rounds(images: Path, address: str, count: int, folder: Path) -> list[dict]:
    measured = []
    for number in range(count):
        for path in PATHS:
            order = ("here", "cluster") if number % 2 == 0 else ("cluster", "here")
            row = {"round": number + 1, "path": path, "order": list(order)}
            for where in order:
                cluster = ["--scheduler", address] if where == "cluster" else []
                row[where] = score(images, path, folder / f"{where}.csv", cluster)
            row["same_csv"] = filecmp.cmp(folder / "here.csv", folder / "cluster.csv", False)
            print(row, flush=True)
            measured.append(row)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=60000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aepipe-cluster-scoring-") as scratch:
        folder = Path(scratch)
        images = digits(args.images, folder)
        address, processes = start_cluster(folder)
        try:
            score(images, "onnx", folder / "warm.csv", ["--scheduler", address])  # workers ready
            measured = rounds(images, address, args.rounds, folder)
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait()
    results = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "images": args.images,
        "workers": WORKERS,
        "rounds": measured,
    }
    write_json(RESULTS / "cluster_scoring.json", results)
    for path in PATHS:
        rows = [row for row in measured if row["path"] == path]
        here, there = (sum(row[where] for row in rows) / len(rows) for where in ("here", "cluster"))
        print(f"{path}: one process {here:.2f} s, cluster {there:.2f} s (mean of {len(rows)})")


if __name__ == "__main__":
    main()
