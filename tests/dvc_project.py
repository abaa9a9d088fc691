"""Helpers for tests that run real `dvc` commands on a git copy of this project."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Small params for the whole pipeline. Barnes-Hut t-SNE: 0.6 s for 512 points, where fft takes 5 s.
SMALL = [
    "-S",
    "data.train_size=2048",
    "-S",
    "data.val_size=512",
    "-S",
    "train.epochs=2",
    "-S",
    "interpolate.start=3",
    "-S",
    "interpolate.end=10",
    "-S",
    "denoise.index=7",
    "-S",
    "tsne.method=bh",
    "-S",
    "judge.train_size=2048",
    "-S",
    "judge.epochs=1",
    "-S",
    "judge.batch_size=32",
    "-S",
    "sample.count=500",
]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]  # the one list of them: dvc.yaml
ALL_STAGES = list(STAGES)
FIGURES = [  # plots/<name>.png, as the stages that draw them declare them
    Path(path).stem
    for stage in STAGES.values()
    for path in (
        next(iter(plot)) if isinstance(plot, dict) else plot for plot in stage.get("plots", [])
    )
    if path.endswith(".png")
]


# `dvc status` of a project with nothing to rerun: check_params alone, which DVC runs every time (it
# names the machine's CPU numerics, src/aepipe/cpu_numerics.py).
UP_TO_DATE = "check_params:\n\talways changed\n"


def project_env(mirror: str | None, **extra: str) -> dict:
    env = dict(os.environ, **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # stages run `python`
    env.pop("AEPIPE_MNIST_MIRROR", None)
    if mirror:
        env["AEPIPE_MNIST_MIRROR"] = mirror
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


def copy_project(dest: Path) -> Path:
    """A fresh git repository holding this project's files (tracked and not ignored), committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=dest, check=True, env=project_env(None))
    return dest


def run(
    args: list[str], cwd: Path, mirror: str | None, check: bool = True, **env: str
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=cwd, env=project_env(mirror, **env), capture_output=True, text=True
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def ran_stages(output: str) -> list[str]:
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]
