"""The CPU kernels pinned to AVX2 (dvc.yaml's `pinned_cpu`): what this machine computes with them,
and what the pinning costs.

    python bench/cpu_isa.py --record [--model models/model.pt]  # this CPU's row of the machines
    python bench/cpu_isa.py [--epochs 5] [--rounds 3]           # the cost: native vs pinned

--record writes one row per CPU (vendor, family and model, its ISA flags): the md5 of a short pinned
training (1 epoch of 2,048 images, 2 threads: tests/test_cpu_isa.py checks it against the committed
one), and with --model the md5 of a `make repro`'s model and whether every output of dvc.lock is
the lock's. The cost: training native vs pinned, interleaved round by round in child processes
(bench/train_speed.py --only aepipe); results in bench/results/cpu_isa-cpu.json.
"""

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path
from statistics import median

from aepipe.atomic import write_json
from aepipe.cpu_numerics import cpu_identity, numerics_key
from provenance import REPO, machine


def pinned_environment() -> dict[str, str]:
    """The variables dvc.yaml's stages run with (its `pinned_cpu`), read from dvc.yaml itself."""
    import yaml

    prefix = yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"][0]["pinned_cpu"]
    return dict(word.split("=", 1) for word in shlex.split(prefix))


SHORT_TRAINING = {"train_size": 2048, "val_size": 512, "epochs": 1, "threads": 2}


def short_training_md5(raw: Path) -> str:
    """The md5 of the weights a short training gives with dvc.yaml's pinned kernels, in a child
    process (the variables are read when torch and its libraries load)."""
    env = {key: value for key, value in os.environ.items() if key not in pinned_environment()}
    child = subprocess.run(
        [sys.executable, __file__, "--short-training", str(raw)],
        capture_output=True,
        text=True,
        env={**env, **pinned_environment(), "PYTHONPATH": str(REPO / "src")},
    )
    if child.returncode:
        sys.exit(f"the short training failed:\n{child.stderr}")
    return child.stdout.strip().splitlines()[-1]


def _short_training(raw: Path) -> str:
    import torch

    from aepipe.data.dataset import load_split
    from aepipe.devices import to_pixels
    from aepipe.model.training import train
    from aepipe.params import load_params

    torch.set_num_threads(SHORT_TRAINING["threads"])
    params = load_params(REPO / "params.yaml")
    cpu = torch.device("cpu")
    images = {
        split: to_pixels(load_split(raw, split, SHORT_TRAINING[f"{split}_size"]).images, cpu)
        for split in ("train", "val")
    }
    result = train(
        images["train"],
        images["val"],
        params.train.model_copy(update={"epochs": 1, "device": "cpu"}),
        params.seed,
        log=lambda line: None,
    )
    state = result.model.state_dict()
    return hashlib.md5(
        b"".join(state[name].numpy().tobytes() for name in sorted(state))
    ).hexdigest()


def train_once(epochs: int, extra_env: dict[str, str]) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in pinned_environment()}
    child = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "train_speed.py"),
            "--only",
            "aepipe",
            "--epochs",
            str(epochs),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **extra_env},
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def record(model: Path | None) -> None:
    """This CPU's row in cpu_isa-machines.json, replacing an earlier row of the same CPU."""
    import yaml

    from train_speed import raw_mnist_dir

    row = {
        "date": date.today().isoformat(),
        **cpu_identity(),
        "numerics_key": numerics_key(),
        "pinned": pinned_environment(),
        "short_training_md5": short_training_md5(raw_mnist_dir()),
    }
    if model:
        locked = {
            out["path"]: out["md5"]
            for stage in yaml.safe_load((REPO / "dvc.lock").read_text())["stages"].values()
            for out in stage.get("outs", [])
        }
        row["model_md5"] = hashlib.md5(model.read_bytes()).hexdigest()
        row["model_is_the_locks"] = row["model_md5"] == locked[str(model)]
    path = REPO / "bench" / "results" / "cpu_isa-machines.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    same = ("vendor", "family", "model", "flags")
    rows = [old for old in rows if any(old[key] != row[key] for key in same)] + [row]
    write_json(path, rows)
    print(json.dumps(row, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--record", action="store_true", help="this CPU's row of cpu_isa-machines.json"
    )
    parser.add_argument(
        "--model", type=Path, help="with --record: a make repro's model, to compare with dvc.lock's"
    )
    # the child of short_training_md5
    parser.add_argument("--short-training", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.short_training:
        print(_short_training(args.short_training))
        return
    if args.record:
        record(args.model)
        return
    variants = {"native": {}, "pinned": pinned_environment()}
    runs = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, extra in variants.items():
            runs[name].append(train_once(args.epochs, extra))
    seconds = {name: [run["train_seconds"] for run in results] for name, results in runs.items()}
    report = {
        "date": date.today().isoformat(),
        "machine": machine(" ".join(cpu_identity()["flags"])),
        "command": f"python bench/cpu_isa.py --epochs {args.epochs} --rounds {args.rounds}",
        "pinned": variants["pinned"],
        "train_seconds": seconds,
        "pinned_over_native": round(median(seconds["pinned"]) / median(seconds["native"]), 3),
        "final_val_mse": {name: results[-1]["final_val_mse"] for name, results in runs.items()},
    }
    write_json(REPO / "bench" / "results" / "cpu_isa-cpu.json", report)
    print("| kernels | train seconds, each round | median |\n|---|---|---|")
    for name, values in seconds.items():
        print(
            f"| {name} | {', '.join(f'{value:.1f}' for value in values)} | {median(values):.1f} |"
        )
    print(f"pinned / native: {report['pinned_over_native']}")


if __name__ == "__main__":
    main()
