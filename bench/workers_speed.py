"""Data-parallel training on this machine: 1 process × all threads vs N processes × 1 thread.

    python bench/workers_speed.py [--epochs 5] [--workers 2]

Runs the real train stage (with torchrun for N > 1) in scratch directories on data/raw, same
params (global batch 64), and compares images/s and the final validation MSE.
Results: bench/results/workers_speed-cpu.json and a table on stdout.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch
import yaml

from aepipe.atomic import write_json
from provenance import REPO, machine


def run_stage(workers: int, epochs: int) -> dict:
    workdir = Path(tempfile.mkdtemp())
    (workdir / "data").mkdir()
    (workdir / "data" / "raw").symlink_to(REPO / "data" / "raw")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(epochs=epochs, workers=workers, device="cpu")
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    if workers > 1:
        env["OMP_NUM_THREADS"] = "1"  # torchrun's default, made explicit
    subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py")],
        cwd=workdir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return json.loads((workdir / "reports" / "train.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not (REPO / "data" / "raw").is_dir():
        sys.exit("bench: no data/raw; run `dvc repro download` first")
    single, parallel = run_stage(1, args.epochs), run_stage(args.workers, args.epochs)
    report = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "torch": torch.__version__,
        "command": f"python bench/workers_speed.py --epochs {args.epochs} --workers {args.workers}",
        "single_process": {"threads": torch.get_num_threads(), **single},
        "data_parallel": {"threads_each": 1, **parallel},
        "speedup": round(parallel["images_per_second"] / single["images_per_second"], 2),
        "val_mse_relative_difference": round(
            parallel["final_val_loss"] / single["final_val_loss"] - 1, 4
        ),
    }
    write_json(REPO / "bench" / "results" / "workers_speed-cpu.json", report)
    print("| run | epochs | train seconds | images/s | final val MSE |\n|---|---|---|---|---|")
    for name, run in (
        (f"1 process × {torch.get_num_threads()} threads", single),
        (f"{args.workers} processes × 1 thread", parallel),
    ):
        print(
            f"| {name} | {run['epochs']} | {run['train_seconds']} | "
            f"{run['images_per_second']:,.0f} | {run['final_val_loss']:.5f} |"
        )
    print(
        f"speedup {report['speedup']}x; val MSE difference "
        f"{report['val_mse_relative_difference']:+.2%}"
    )


if __name__ == "__main__":
    main()
