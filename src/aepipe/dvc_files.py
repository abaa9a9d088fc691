"""The pipeline's dvc.yaml and dvc.lock, parsed here alone: what a stage declares (its deps, outs,
metrics), the metrics files of every stage, and the md5 dvc.lock records for each file output."""

import os
from pathlib import Path

import yaml


def stages(root: str | os.PathLike = ".") -> dict:
    """dvc.yaml's stages, by name."""
    return yaml.safe_load((Path(root) / "dvc.yaml").read_text())["stages"]


def declared(stage: str, section: str, root: str | os.PathLike = ".") -> list[str]:
    """The paths dvc.yaml lists for `stage` under `section` (deps, outs, metrics), without their
    options."""
    return [_path(entry) for entry in stages(root)[stage].get(section, [])]


def metrics_files(root: str | os.PathLike = ".") -> list[str]:
    """Every metrics file dvc.yaml declares, stage by stage."""
    return [_path(entry) for stage in stages(root).values() for entry in stage.get("metrics", [])]


def locked_md5s(root: str | os.PathLike = ".") -> dict[str, str]:
    """Each file output's md5 as dvc.lock records it (folders left out); none without a lock."""
    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        return {}
    return {
        out["path"]: out["md5"]
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values()
        for out in stage.get("outs", [])
        if "md5" in out and not out["md5"].endswith(".dir")
    }


def _path(entry: str | dict) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else entry
