"""What every benchmark shares: where the repository and its results files are, and the machine a
result was measured on, described alike in every results file."""

import os
import platform
from pathlib import Path

from aepipe.cpu_numerics import cpu_identity

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def machine(*details: str | None) -> str:
    """ "x86_64, 2 cores, <the CPU's name>", then any `details` given (threads, a GPU's name)."""
    cpu = cpu_identity()
    described = [platform.machine(), f"{os.cpu_count()} cores", cpu["name"] or cpu["vendor"]]
    return ", ".join(described + [detail for detail in details if detail])
