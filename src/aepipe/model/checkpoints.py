"""Checkpoints on disk, written atomically and byte-reproducibly and read back with torch's
weights-only loader: models (refused with a clear error unless they hold the expected format), and
the resume state of a training run (ignored unless it was saved by a run with the same inputs)."""

import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from aepipe.atomic import atomic_path
from aepipe.errors import AepipeError


def torch_save(state: dict, path: str | Path) -> None:
    """torch.save, atomically and byte-reproducibly.

    Given a path, torch.save names the archive's records after the file, here a random temporary
    name; given an open file it uses a fixed name, so equal states give equal bytes.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(state, file)


def read_checkpoint(path: str | Path, expected_format: str, what: str, made_by: str) -> dict:
    """The checkpoint dict saved at `path` as `expected_format` (`what` names the model in errors,
    `made_by` the stage that writes it); anything else is refused naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AepipeError(f"{path}: model file not found; run the {made_by} stage first")
    if not zipfile.is_zipfile(path):
        raise AepipeError(
            f"{path}: not a model checkpoint (expected the zip archive torch.save writes)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or corrupt files
        raise AepipeError(
            f"{path}: not a loadable model checkpoint ({_short_reason(error)})"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != expected_format:
        raise AepipeError(
            f"{path}: not an aepipe {what} checkpoint (expected format {expected_format!r})"
        )
    return checkpoint


def load_weights(module: torch.nn.Module, state_dict: dict, path: str | Path, what: str) -> None:
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as error:
        raise AepipeError(f"{path}: weights do not fit the {what}: {error}") from None


def _short_reason(error: Exception) -> str:
    """torch's weights-only refusal is a page of advice; keep the line that names the cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = next(
        (line for line in lines if line.startswith("WeightsUnpickler error:")),
        lines[0] if lines else "",
    )
    return f"{type(error).__name__}: {cause.split('. Please use')[0]}"


def save_resume_state(path: Path, fingerprint: dict, state: dict) -> None:
    """Save a training run's `state` (tensors, numbers, lists and dicts of them) with the
    `fingerprint` of its inputs (params, seed, device, data)."""
    torch_save({"fingerprint": fingerprint, **state}, path)


def load_resume_state(path: Path, fingerprint: dict, log: Callable[[str], None]) -> dict | None:
    """The state saved at `path` if a run with the same `fingerprint` saved it, else None (said in
    `log`)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a foreign or damaged file is not worth stopping for: start afresh
        log(f"ignoring unreadable checkpoint {path}: {type(error).__name__}")
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        log(f"ignoring checkpoint {path}: it was saved by a run with other parameters or data")
        return None
    return saved
