"""A threshold set on site: the per-image threshold recomputed from known-good images of the line,
for a false-alarm target, without retraining. It is written into a copy of the exported detector
(its graph and metadata) or into a threshold file beside the pipeline's torch files, each saying
where it came from: how many images, their sha256, the target, the interval, the detector it was
made from. Where the detector gives latent codes, the good images become its drift watch's
reference too: the watch then asks whether the line still looks as it did on the day of calibration.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from aepipe.anomaly.calibration import EXCEEDANCES_NEEDED, binomial_interval, min_calibration_images
from aepipe.anomaly.detection import per_image_threshold
from aepipe.anomaly.drift import encode_reference
from aepipe.anomaly.verdicts import flag_rule
from aepipe.atomic import atomic_path, file_sha256
from aepipe.deploy.onnx_detector import CHECKSUM, graph_sha256
from aepipe.errors import AepipeError

MAX_TARGET = 0.5  # a detector that flags half the good parts tells them from nothing
# export.Detector's buffer, the constant the graph's flag compares against
THRESHOLD_INITIALIZER = "threshold"


def add_images(digest: "hashlib._Hash", images: np.ndarray) -> None:
    """Hash the images' float32 pixels into `digest` (batch after batch: the same sha256 for any
    batching)."""
    digest.update(np.ascontiguousarray(images, dtype=np.float32).tobytes())


def site_threshold(
    scores: np.ndarray, dead: np.ndarray, sources: list[str], target: float, images_sha256: str
) -> dict:
    """The quantile threshold of the good images' scores for `target`, and where it came from (the
    images' sha256 by `add_images`); refused for a target outside (0, MAX_TARGET), too few images
    for it, or a dead frame among them."""
    if not 0 < target < MAX_TARGET:
        raise AepipeError(
            f"--false-alarms {target:g}: expected the share of good parts to flag, above 0 and "
            f"below {MAX_TARGET:g}"
        )
    needed = min_calibration_images(target)
    if len(scores) < needed:
        raise AepipeError(
            f"{len(scores):,} good images for a {target:.1%} false-alarm target: a usable "
            f"threshold needs at least {needed:,} ({EXCEEDANCES_NEEDED} expected false alarms "
            "among them)"
        )
    if dead.any():
        raise AepipeError(
            f"{sources[int(np.argmax(dead))]}: a dead frame (blank, saturated or one flat "
            "colour), not a good part; remove it from the good images"
        )
    threshold = per_image_threshold(scores, "quantile", 0.0, 1 - target)
    false_alarms = int(np.sum(flag_rule(scores, dead, threshold)))
    return {
        "threshold": threshold,
        "target": target,
        "images": len(scores),
        "false_alarms": false_alarms,
        # where the rate on new good parts of the same line lies, 95 % of the time
        "interval": list(binomial_interval(false_alarms, len(scores))),
        "images_sha256": images_sha256,
    }


def site_reference(
    scores: np.ndarray, latents: np.ndarray | None, target: float, model_sha256: str
) -> str | None:
    """The drift watch's reference made of the good images: their scores and latent codes, and the
    target (None where the detector gives no codes: a format /2 file). A scan's code is its tiles'
    mean."""
    if latents is None:
        return None
    return encode_reference(scores, latents, target, seed=0, model_sha256=model_sha256)


def write_calibrated(scorer, calibration: dict, out: Path, reference: str | None) -> None:
    """The scorer's files with the site threshold, written to `out`: a copy of its detector, or of
    its threshold file (aepipe.deploy.scorers.Scorer.files)."""
    files = scorer.files
    if "onnx" in files:
        write_detector(files["onnx"], calibration, out, reference)
    else:
        write_threshold_file(
            files["threshold"],
            files["model"],
            files["score"],
            scorer.method,
            calibration,
            out,
            reference,
        )


def write_detector(source: Path, calibration: dict, out: Path, reference: str | None) -> None:
    """A copy of the detector `source` whose graph and metadata hold the site threshold and the
    `reference` its drift watch reads from now on (aepipe.anomaly.drift; None: none), all or
    nothing."""
    import onnx
    from onnx import numpy_helper

    _refuse_overwriting(source, out)
    graph = onnx.load(source)
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    carried = {"reference": reference} if reference else {}
    [constant] = [init for init in graph.graph.initializer if init.name == THRESHOLD_INITIALIZER]
    if numpy_helper.to_array(constant).item() != float(metadata["threshold"]):
        raise AepipeError(
            f"{source}: its graph's threshold is not its metadata's; export it again (`dvc repro "
            "export`)"
        )
    constant.CopyFrom(
        numpy_helper.from_array(
            np.array(calibration["threshold"], np.float64), THRESHOLD_INITIALIZER
        )
    )
    made_from = {
        "detector": str(source),
        "sha256": file_sha256(source),
        "threshold": float(metadata["threshold"]),
    }
    onnx.helper.set_model_props(
        graph,
        {
            **{key: value for key, value in metadata.items() if key != "reference"},
            **carried,
            "threshold": repr(calibration["threshold"]),
            "calibration": json.dumps({**calibration, "made_from": made_from}, sort_keys=True),
            CHECKSUM: graph_sha256(graph),
        },
    )
    with atomic_path(out) as tmp:
        onnx.save(graph, tmp)


def write_threshold_file(
    threshold_report: Path,
    model: Path,
    score: Path,
    method: str,
    calibration: dict,
    out: Path,
    reference: str | None,
) -> None:
    """A threshold file as the threshold stage writes it (`aepipe score --threshold` reads it),
    holding the site threshold, where it came from, and the `reference` the drift watch reads with
    it (None: none)."""
    _refuse_overwriting(threshold_report, out)
    made_from = {"threshold_file": str(threshold_report), "sha256": file_sha256(threshold_report)}
    report = {
        "per_image": {
            "rule": f"on site: quantile {1 - calibration['target']:g} of good images",
            "score": method,
            "threshold": calibration["threshold"],
            "calibration": {**calibration, "made_from": made_from},
        },
        "model_sha256": file_sha256(model),
        "score_sha256": file_sha256(score),
        **({"reference": json.loads(reference)} if reference else {}),
    }
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")


def _refuse_overwriting(source: Path, out: Path) -> None:
    if out.resolve() == source.resolve():
        raise AepipeError(
            f"--out {out}: the file it is made from; name a new file (e.g. "
            f"{out.stem}-line3{out.suffix})"
        )
