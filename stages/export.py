"""Stage export: the detector as one file, models/detector.onnx (the model, the fitted score and the
threshold in one ONNX graph), checked against the torch detector it was traced from: onnxruntime
scores every validation image and every synthetic anomaly of the first validation images, and must
agree with it."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aepipe.anomaly.corruptions import corrupt
from aepipe.anomaly.detector import Detector
from aepipe.anomaly.drift import encode_reference
from aepipe.anomaly.scores import FittedScore
from aepipe.anomaly.threshold_report import ThresholdReport
from aepipe.atomic import file_sha256, write_json
from aepipe.data.dataset import load_split
from aepipe.deploy.export import detector_metadata, export_detector, parity
from aepipe.deploy.onnx_detector import OnnxDetector
from aepipe.devices import as_floats, to_pixels
from aepipe.model.autoencoder import load_model
from aepipe.params import load_params
from aepipe.run_guard import run_guarded

DETECTOR = "models/detector.onnx"
REFERENCE = "models/reference.json"  # the reference the detector carries in its metadata
# mean + k·std promises no rate to watch
NO_REFERENCE = "a threshold that promises no false-alarm rate (threshold.method mean_std)"
# The params the detector is made from (its metadata names them; dvc.yaml reruns this stage when
# they change).
DETECTOR_PARAMS = ("seed", "data", "train", "anomaly", "threshold")
# the first validation images, each corrupted in every way anomaly.corruptions names
CORRUPTED = 256


def main() -> None:
    params = load_params("params.yaml")
    cpu = torch.device("cpu")
    model = load_model("models/model.pt", cpu, images=(params.data.channels, params.data.side))
    fitted = FittedScore.from_dict(json.loads(Path("models/anomaly_score.json").read_text()))
    threshold = ThresholdReport.read("reports/threshold.json").threshold
    made_from = {
        key: value
        for key, value in params.model_dump(mode="json").items()
        if key in DETECTOR_PARAMS
    }
    metadata = detector_metadata(
        params.data.channels,
        params.data.side,
        fitted,
        threshold,
        params.data.dataset,
        made_from,
        file_sha256("models/model.pt"),
    )
    reference = calibration_reference(fitted, params)
    write_json(REFERENCE, json.loads(reference) if reference else {"none": NO_REFERENCE})
    detector = Detector(model, fitted, threshold)
    export_detector(
        detector,
        params.data.channels,
        params.data.side,
        DETECTOR,
        {**metadata, **({"reference": reference} if reference else {})},
    )

    checked = check_parity(detector, params)
    headline = {
        "export_max_rel_diff": max(result["max_rel_diff"] for result in checked.values()),
        "export_flags_differ": sum(result["flags_differ"] for result in checked.values()),
    }
    write_json("data/metrics/export.json", headline)
    write_json(
        "reports/export.json",
        {
            **headline,
            "max_map_diff": max(result["max_map_diff"] for result in checked.values()),
            "by_image_set": checked,
            "detector_sha256": file_sha256(DETECTOR),
            "metadata": {k: v for k, v in metadata.items() if k != "params"},
        },
    )


def check_parity(detector: Detector, params) -> dict[str, dict]:
    """The exported file against the module, by image set: the validation images, and corruptions
    of the first CORRUPTED of them."""
    onnx, cpu = OnnxDetector(DETECTOR), torch.device("cpu")
    # uint8: converted per batch
    images = to_pixels(load_split("data/raw", "val", params.data.val_size).images, cpu)
    checked = {"validation": parity(onnx, detector, images)}
    for name, batch in corrupt(
        as_floats(images[:CORRUPTED]), params.anomaly.corruptions, params.seed
    ).items():
        checked[name] = parity(onnx, detector, batch)
    return checked


def calibration_reference(fitted: FittedScore, params) -> str | None:
    """What the detector carries for the drift watch (aepipe.anomaly.drift): the calibration images'
    (scans') scores and latent codes and the false-alarm target; None where it has none to watch
    by."""
    target = params.threshold.false_alarm_target
    if target is None:
        return None
    images = pd.read_csv("data/scores/val_images.csv")
    calibration = (images["role"] == "calibration").to_numpy()
    saved = np.load("data/latents.npz")
    latents = saved["scan_latents" if fitted.tiling else "latents"][calibration]
    return encode_reference(
        images["score"].to_numpy()[calibration],
        latents,
        target,
        params.seed,
        model_sha256=file_sha256("models/model.pt"),
    )


if __name__ == "__main__":
    run_guarded(main)
