"""Run the train stage as a process in a directory laid out like the project (params.yaml,
data/raw)."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

SMALL_TRAINING = {
    "data": {"train_size": 2048, "val_size": 512},
    "train": {"epochs": 5},
    "interpolate": {"start": 0, "end": 1},
    "denoise": {"index": 0},
}
TIMING_METRICS = {"train_seconds", "images_per_second"}
LIVE = Path("dvclive")


def stage_workdir(path: Path, raw_dir: Path, **train: object) -> Path:
    """A directory laid out as the project for the train stage: params.yaml and data/raw."""
    (path / "data").mkdir(parents=True)
    (path / "data" / "raw").symlink_to(raw_dir)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in SMALL_TRAINING.items():
        params[section].update(values)
    params["train"].update(device="cpu", **train)
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    return path


def train_stage(workdir: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "stages" / "train.py")],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def finished(workdir: Path) -> str:
    process = train_stage(workdir)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def outputs(workdir: Path) -> dict:
    report = json.loads((workdir / "reports" / "train.json").read_text())
    live_summary = json.loads((workdir / LIVE / "metrics.json").read_text())
    return {
        "report": {key: value for key, value in report.items() if key not in TIMING_METRICS},
        "live_summary": {
            key: value for key, value in live_summary.items() if key not in TIMING_METRICS
        },
        "model": (workdir / "models" / "model.pt").read_bytes(),
        "batch_losses": (workdir / LIVE / "plots" / "custom" / "batch_mse.json").read_text(),
        "epoch_losses": [
            (workdir / LIVE / "plots" / "metrics" / f"{name}.tsv").read_text()
            for name in ("train_mse", "val_mse")
        ],
    }
