"""Stage evaluate: how well the per-image threshold separates anomalies from normal images.

Normal images: the normal validation images not used for calibration. Anomalies: the held-out
digits (in one-class mode) and each synthetic corruption of the normal test images, all scored by
the losses stage: this one runs no model.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aepipe.anomaly import calibration_split, detection_metrics
from aepipe.atomic import write_json
from aepipe.errors import AepipeError, exit_on_error
from aepipe.mnist import load_classes, load_split
from aepipe.params import load_params
from aepipe.plots import anomaly_scores, most_anomalous, save

MOST_ANOMALOUS = 16
# Shown in `dvc exp show`: the anomalies that tell models apart (noise, inversion and saturation are
# caught by every model, a blank image by none). All of them are in reports/anomaly.json.
HEADLINE_ANOMALIES = {"held_out_digits": "auc_held_out", "rotation": "auc_rotation", "patch": "auc_patch"}


def main() -> None:
    params = load_params("params.yaml")
    threshold = json.loads(Path("reports/threshold.json").read_text())["per_image"]["threshold"]
    val = load_split("data/raw", "val", params.data.val_size)
    scores = pd.read_csv("data/losses/val_images.csv")
    normal_index = np.flatnonzero(scores["normal"].to_numpy())
    _, test = calibration_split(len(normal_index), params.anomaly.calibration_fraction, params.seed)
    normal_test = normal_index[test]
    normal_scores = scores["loss"].to_numpy()[normal_test]

    anomaly_sets = {}
    held_out = np.flatnonzero(~scores["normal"].to_numpy())
    if len(held_out):
        anomaly_sets["held_out_digits"] = scores["loss"].to_numpy()[held_out]
    corrupted = pd.read_csv("data/losses/corrupted_images.csv")
    if not np.array_equal(corrupted["index"].to_numpy(), normal_test):
        raise AepipeError("data/losses/corrupted_images.csv: scored for another calibration split; "
                          "run the losses stage again (dvc repro)")
    anomaly_sets.update({name: corrupted[name].to_numpy() for name in corrupted.columns if name != "index"})

    evaluation = {name: detection_metrics(normal_scores, anomaly, threshold) for name, anomaly in anomaly_sets.items()}
    false_positive_rate = float(np.mean(normal_scores > threshold))
    write_json("metrics/anomaly.json", {
        "fp_rate": false_positive_rate,
        **{headline: evaluation[name]["roc_auc"] for name, headline in HEADLINE_ANOMALIES.items() if name in evaluation},
    })
    write_json("reports/anomaly.json", {
        "threshold": threshold,
        "normal_test_images": len(normal_test),
        "false_positive_rate": false_positive_rate,
        **evaluation,
    })
    save(anomaly_scores(normal_scores, anomaly_sets, threshold, evaluation), "plots/anomaly_scores.png")
    top = np.argsort(scores["loss"].to_numpy())[::-1][:MOST_ANOMALOUS]
    classes = load_classes("data/raw")
    save(most_anomalous(val.images[top] / 255, scores["loss"].to_numpy()[top], val.labels[top],
                        scores["normal"].to_numpy()[top], threshold, classes.names, classes.noun),
         "plots/most_anomalous.png")


if __name__ == "__main__":
    exit_on_error(main)
