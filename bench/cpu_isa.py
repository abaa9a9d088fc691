"""What pinning the CPU kernels to AVX2 (dvc.yaml's `pinned_cpu`) costs: the pipeline's training, native
vs pinned, interleaved round by round in child processes (bench/train_speed.py --only aepipe).

    python bench/cpu_isa.py [--epochs 5] [--rounds 3]

Pinned, an AVX-512 machine computes what an AVX2 one does, bit for bit (the model's bytes: see
docs/reproducibility.md); natively it picks wider kernels whose float sums round differently.
Results: bench/results/cpu_isa-cpu.json and a table on stdout.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from statistics import median

from aepipe.atomic import write_json

REPO = Path(__file__).resolve().parents[1]


def pinned_environment() -> dict[str, str]:
    """The variables dvc.yaml's stages run with (its `pinned_cpu`), read from dvc.yaml itself."""
    import yaml

    prefix = yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"][0]["pinned_cpu"]
    return dict(re.findall(r"(\w+)=(\S+)", prefix))


def cpu_flags() -> list[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return sorted(set(re.findall(r"\b(avx512[a-z]*|avx2)\b", text)))


def train_once(epochs: int, extra_env: dict[str, str]) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in pinned_environment()}
    child = subprocess.run([sys.executable, str(REPO / "bench" / "train_speed.py"), "--only", "aepipe", "--epochs",
                            str(epochs), "--device", "cpu"], capture_output=True, text=True, check=True,
                           env={**env, **extra_env})
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants = {"native": {}, "pinned": pinned_environment()}
    runs = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, extra in variants.items():
            runs[name].append(train_once(args.epochs, extra))
    seconds = {name: [run["train_seconds"] for run in results] for name, results in runs.items()}
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {' '.join(cpu_flags())}",
        "command": f"python bench/cpu_isa.py --epochs {args.epochs} --rounds {args.rounds}",
        "pinned": variants["pinned"],
        "train_seconds": seconds,
        "pinned_over_native": round(median(seconds["pinned"]) / median(seconds["native"]), 3),
        "final_val_mse": {name: results[-1]["final_val_mse"] for name, results in runs.items()},
    }
    write_json(REPO / "bench" / "results" / "cpu_isa-cpu.json", report)
    print("| kernels | train seconds, each round | median |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {', '.join(f'{value:.1f}' for value in values)} | {median(values):.1f} |")
    print(f"pinned / native: {report['pinned_over_native']}")


if __name__ == "__main__":
    main()
