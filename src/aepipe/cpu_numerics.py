"""Which CPU results a machine computes: the kind of CPU and the number of threads.

With the kernels pinned (dvc.yaml's `pinned_cpu`), an Intel and an AMD CPU train the same
autoencoder byte for byte, but MKL still takes per-vendor paths for other GEMM shapes (the judge's
training, small inference batches), and float sums split over another number of threads round
differently (docs/reproducibility.md). `numerics_key` names that boundary, so that DVC's run cache
never hands a result computed on one side of it to the other.
"""

import os
import platform
import re
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_identity() -> dict:
    """This CPU as /proc/cpuinfo names it: vendor, family, model, name and its vector ISA flags."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    fields = dict(
        re.findall(r"^(vendor_id|cpu family|model|model name)\s*:\s*(.*)$", text, re.MULTILINE)
    )
    return {
        "vendor": fields.get("vendor_id", platform.processor() or "unknown"),
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "name": fields.get("model name"),
        "flags": sorted(set(re.findall(r"\b(avx512[a-z_0-9]*|avx2|amx[a-z_0-9]*)\b", text))),
    }


def numerics_key() -> str:
    """One line that differs wherever the stages' CPU numbers may: the architecture, the CPU's
    vendor, its CPUs (torch's threads by default) and any thread count set in the environment."""
    threads = ", ".join(
        f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if os.environ.get(name)
    )
    return f"{platform.machine()} {cpu_identity()['vendor']}, {os.cpu_count()} CPUs" + (
        f", {threads}" if threads else ""
    )
