"""Stage evaluate: how well the per-image threshold separates anomalies from normal images.

Normal images: the normal validation images the losses stage marked for testing (not those that
calibrated the threshold). Anomalies: the held-out classes (in one-class mode) and each synthetic
corruption of the normal test images, all scored by the losses stage: this one runs no model.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aepipe.anomaly import detection_metrics
from aepipe.atomic import write_json
from aepipe.dataset import load_classes
from aepipe.errors import exit_on_error
from aepipe.plots import anomaly_scores, most_anomalous, save

# Shown in `dvc exp show`: the anomalies that tell models and scores apart (noise, inversion and
# saturation are caught by every model). All of them are in reports/anomaly.json.
HEADLINE_ANOMALIES = {"held_out_digits": "auc_held_out", "rotation": "auc_rotation", "patch": "auc_patch",
                      "blank": "auc_blank"}
# An inspection set's defects located pixel by pixel (the losses stage's names → the metrics').
LOCALISATION = {"pixel_roc_auc": "auc_defect_pixels", "aupro": "aupro"}


def main() -> None:
    threshold_report = json.loads(Path("reports/threshold.json").read_text())["per_image"]
    threshold, method = threshold_report["threshold"], threshold_report["score"]
    images = pd.read_csv("data/losses/val_images.csv")
    normal_scores = images.loc[images["role"] == "test", "score"].to_numpy()
    anomaly_sets = {}
    held_out = images.loc[images["role"] == "held_out", "score"].to_numpy()
    if len(held_out):
        anomaly_sets["held_out_digits"] = held_out
    corrupted = pd.read_csv("data/losses/corrupted_images.csv")
    anomaly_sets.update({name: corrupted[name].to_numpy() for name in corrupted.columns if name != "index"})
    localisation = json.loads(Path("data/losses/localisation.json").read_text())
    classes = load_classes("data/raw")

    evaluation = {name: detection_metrics(normal_scores, anomaly, threshold) for name, anomaly in anomaly_sets.items()}
    if len(held_out) and classes.labelled:  # each held-out class (an inspection set's defect kind) on its own
        evaluation["held_out_by_class"] = {
            classes.names[label]: detection_metrics(normal_scores, group["score"].to_numpy(), threshold)
            for label, group in images[images["role"] == "held_out"].groupby("label")}
    false_positive_rate = float(np.mean(normal_scores > threshold))
    write_json("metrics/anomaly.json", {
        "fp_rate": false_positive_rate,
        **{headline: evaluation[name]["roc_auc"] for name, headline in HEADLINE_ANOMALIES.items() if name in evaluation},
        **({"auc_patch_pixels": localisation["patch_pixel_roc_auc"]} if "patch_pixel_roc_auc" in localisation else {}),
        **{headline: localisation[name] for name, headline in LOCALISATION.items() if name in localisation},
        # An inspection set's defect kinds, each in `dvc exp show`.
        **({f"auc_{kind}": result["roc_auc"] for kind, result in evaluation["held_out_by_class"].items()}
           if classes.inspection else {}),
    })
    write_json("reports/anomaly.json", {
        "score": method,
        "threshold": threshold,
        "normal_test_images": len(normal_scores),
        "false_positive_rate": false_positive_rate,
        **evaluation,
        "localisation": localisation,
    })
    save(anomaly_scores(normal_scores, anomaly_sets, threshold, evaluation, method), "plots/anomaly_scores.png")
    top = np.load("data/losses/most_anomalous.npz")
    shown = images.iloc[top["index"]]
    save(most_anomalous(top["images"], top["maps"], shown["score"].to_numpy(), shown["label"].to_numpy(),
                        shown["normal"].to_numpy(), threshold, method, classes.names, classes.noun),
         "plots/most_anomalous.png")


if __name__ == "__main__":
    exit_on_error(main)
