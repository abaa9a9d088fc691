"""What every benchmark shares: where the repository and its results files are, and the machine a
result was measured on, described alike in every results file."""

import os
import platform
import subprocess
import sys
from pathlib import Path

from aepipe.cpu_numerics import cpu_identity

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# the one-off studies' (bench/studies/README.md)
STUDY_RESULTS = REPO / "bench" / "studies" / "results"
BIN = Path(sys.executable).parent

# The tests' small run (tests/dvc_project.py), one epoch: what the benchmarks of DVC's own
# machinery (grids, faults) run, in a minute.
SMALL = {
    "data.train_size": 2048,
    "data.val_size": 512,
    "train.epochs": 1,
    "interpolate.start": 3,
    "interpolate.end": 10,
    "denoise.index": 7,
    "tsne.method": "bh",
    "judge.train_size": 2048,
    "judge.epochs": 1,
    "judge.batch_size": 32,
    "sample.count": 500,
}


def machine(*details: str | None) -> str:
    """ "x86_64, 2 cores, <the CPU's name> (family F model M)", then any `details` given (threads,
    a GPU's name): one CPU name covers models whose speeds differ."""
    cpu = cpu_identity()
    name = cpu["name"] or cpu["vendor"]
    if cpu["model"]:
        name += f" (family {cpu['family']} model {cpu['model']})"
    described = [platform.machine(), f"{os.cpu_count()} cores", name]
    return ", ".join(described + [detail for detail in details if detail])


def command_env() -> dict:
    """The environment of the commands a benchmark runs as a user would: this interpreter's `dvc`,
    `python` and `aepipe` first on PATH, DVC's analytics off, a git identity for the commits DVC
    makes."""
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@localhost",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@localhost",
    )


def sh(*args: str, cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, env=command_env(), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def fresh_clone(root: Path) -> Path:
    """A clone of HEAD, its origin a bare repository and its DVC remote a folder beside it, the
    download stage's data in its cache and in the remote's run cache."""
    clone = root / "aepipe"
    sh("git", "clone", "-q", str(REPO), str(clone), cwd=root)
    sh("git", "init", "-q", "--bare", str(root / "origin.git"), cwd=root)
    sh("git", "remote", "set-url", "origin", str(root / "origin.git"), cwd=clone)
    sh("git", "push", "-q", "origin", "HEAD", cwd=clone)
    sh("make", "--no-print-directory", "remote", f"DVC={BIN / 'dvc'}", cwd=clone)
    sh(str(BIN / "dvc"), "repro", "download", cwd=clone)
    sh(str(BIN / "dvc"), "push", "--run-cache", "download", cwd=clone)
    if sh("git", "status", "--porcelain", cwd=clone):
        sys.exit(f"the download changed the clone:\n{sh('git', 'status', cwd=clone)}")
    return clone


def queue_busy(clone: Path) -> bool:
    """Whether a DVC queue worker still runs (cheap), else whether anything is still queued."""
    workers = subprocess.run(["pgrep", "-f", "exp queue-worker"], capture_output=True)
    if workers.returncode == 0:
        return True
    status = sh(str(BIN / "dvc"), "queue", "status", cwd=clone)
    return any(state in status for state in ("Queued", "Running"))
