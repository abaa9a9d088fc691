"""The threshold stage's report (reports/threshold.json, or `aepipe calibrate`'s copy of it), read
in one place: the per-image threshold, the score it cuts, what it was computed for (the sha256 of
the model and of the fitted score), and the drift watch's reference a calibrated copy carries."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from aepipe.errors import AepipeError


@dataclass(frozen=True)
class ThresholdReport:
    threshold: float
    score: str  # the anomaly score it cuts (anomaly.score's method)
    model_sha256: str
    score_sha256: str
    reference: dict | None = None  # aepipe calibrate's: its good images

    @classmethod
    def read(cls, path: str | os.PathLike) -> "ThresholdReport":
        try:
            saved = json.loads(Path(path).read_text())
            per_image = saved["per_image"]
            return cls(
                float(per_image["threshold"]),
                per_image["score"],
                saved["model_sha256"],
                saved["score_sha256"],
                saved.get("reference"),
            )
        except FileNotFoundError:
            raise AepipeError(
                f"{path}: threshold file not found; run `dvc repro threshold` first"
            ) from None
        except (ValueError, KeyError, TypeError):
            raise AepipeError(
                f"{path}: not a threshold file written by the threshold stage"
            ) from None
