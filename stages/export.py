"""Stage export: the detector as one file, models/detector.onnx (the model, the fitted score and the
threshold in one ONNX graph), checked against the pipeline's own results: onnxruntime scores every
validation image and every synthetic anomaly the losses stage scored, and must agree with it."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aepipe.atomic import file_sha256, write_json
from aepipe.anomaly.corruptions import corrupt
from aepipe.anomaly.detection import DEAD_FRAME
from aepipe.data.dataset import load_split, load_tiles
from aepipe.devices import as_floats, to_pixels
from guard import run_guarded
from aepipe.deploy.export import (Detector, detector_metadata, export_detector, parity, relative_differences, scan_parity,
                                  torch_floor)
from aepipe.model.autoencoder import load_model
from aepipe.params import load_params
from aepipe.anomaly.scores import FittedScore
from aepipe.deploy.serve import OnnxDetector

DETECTOR = "models/detector.onnx"
# The params the detector is made from (its metadata names them; dvc.yaml reruns this stage when they change).
DETECTOR_PARAMS = ("seed", "data", "train", "anomaly", "threshold")
BATCH_CHECKED = 256  # validation images also scored one at a time, by the detector and by torch


def main() -> None:
    params = load_params("params.yaml")
    cpu = torch.device("cpu")
    model = load_model("models/model.pt", cpu, images=(params.data.channels, params.data.side))
    fitted = FittedScore.from_dict(json.loads(Path("models/anomaly_score.json").read_text()))
    threshold = json.loads(Path("reports/threshold.json").read_text())["per_image"]["threshold"]
    made_from = {key: value for key, value in params.model_dump(mode="json").items() if key in DETECTOR_PARAMS}
    metadata = detector_metadata(params.data.channels, params.data.side, fitted, threshold, params.data.dataset,
                                 made_from, file_sha256("models/model.pt"))
    in_torch = Detector(model, fitted, threshold)
    export_detector(in_torch, params.data.channels, params.data.side, DETECTOR, metadata)

    detector = OnnxDetector(DETECTOR)
    images = to_pixels(load_split("data/raw", "val", params.data.val_size).images, cpu)  # uint8: converted per batch
    table = pd.read_csv("data/losses/val_images.csv")
    if fitted.tiling:
        checked, floor = {"validation": scan_parity(Path(DETECTOR), model, fitted, load_tiles("data/raw"), images,
                                                    table["score"].to_numpy(), table[DEAD_FRAME].to_numpy(bool))}, {}
    else:
        checked = image_sets_parity(detector, model, fitted, images, table["score"].to_numpy(), params)
        floor = {"one_at_a_time": one_at_a_time(detector, in_torch, as_floats(images[:BATCH_CHECKED]), table["score"].to_numpy())}
    headline = {"export_max_rel_diff": max(result["max_rel_diff"] for result in checked.values()),
                "export_flags_differ": sum(result["flags_differ"] for result in checked.values())}
    write_json("data/metrics/export.json", headline)
    write_json("reports/export.json", {
        **headline, "max_map_diff": max(result["max_map_diff"] for result in checked.values()), "by_image_set": checked,
        **floor, "detector_sha256": file_sha256(DETECTOR), "metadata": {k: v for k, v in metadata.items() if k != "params"}})


def image_sets_parity(detector: OnnxDetector, model, fitted: FittedScore, images: torch.Tensor, scores: np.ndarray,
                      params) -> dict:
    """parity on the validation images and on every synthetic anomaly the losses stage scored."""
    checked = {"validation": parity(detector, model, fitted, images, scores)}
    corrupted = pd.read_csv("data/losses/corrupted_images.csv")
    originals = as_floats(images[torch.from_numpy(corrupted["index"].to_numpy().copy())])
    for name, batch in corrupt(originals, params.anomaly.corruptions, params.seed).items():
        checked[name] = parity(detector, model, fitted, batch, corrupted[name].to_numpy())
    return checked


def one_at_a_time(detector: OnnxDetector, in_torch: Detector, images: torch.Tensor, scores: np.ndarray) -> dict:
    """The first validation images scored one by one: by the detector against its own batched scores
    (they must agree), and by the pipeline's torch computation against the pipeline's batched scores
    (how closely float32 agrees with itself: the floor the detector's differences are read against)."""
    pixels = images.numpy()
    one_by_one = np.concatenate([detector(image[None])[0] for image in pixels])
    return {"images": len(images), "detector_batch_1_vs_batched": float(np.max(np.abs(one_by_one - detector(pixels)[0]))),
            "detector_vs_pipeline": float(np.max(relative_differences(one_by_one, scores[: len(images)], detector.threshold))),
            "torch_batch_1_vs_pipeline": torch_floor(in_torch, images, scores[: len(images)])}

if __name__ == "__main__":
    run_guarded(main)
