"""What every benchmark shares: where the repository and its results files are, and the machine a
result was measured on, described alike in every results file."""

import os
import platform
import sys
from pathlib import Path

from aepipe.cpu_numerics import cpu_identity

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def machine(*details: str | None) -> str:
    """ "x86_64, 2 cores, <the CPU's name>", then any `details` given (threads, a GPU's name)."""
    cpu = cpu_identity()
    described = [platform.machine(), f"{os.cpu_count()} cores", cpu["name"] or cpu["vendor"]]
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
