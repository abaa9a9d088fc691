"""Stage evaluate: how well the per-image threshold separates anomalies from normal images.

Normal images: the normal validation images the losses stage marked for testing (not those that
calibrated the threshold). Anomalies: the held-out classes (in one-class mode) and each synthetic
corruption of the normal test images, all scored by the losses stage: this one runs no model.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from aepipe.anomaly import detection_metrics, pr_curve, roc_curve
from aepipe.atomic import write_csv, write_json
from aepipe.dataset import load_classes
from aepipe.errors import exit_on_error
from aepipe.plots import anomaly_scores, most_anomalous, save

# Shown in `dvc exp show`: the anomalies that tell models and scores apart (noise, inversion and
# saturation are caught by every model). All of them are in reports/anomaly.json.
HEADLINE_ANOMALIES = {"held_out_digits": "auc_held_out", "rotation": "auc_rotation", "patch": "auc_patch",
                      "blank": "auc_blank"}
# An inspection set's defects located pixel by pixel (the losses stage's names → the metrics').
LOCALISATION = {"pixel_roc_auc": "auc_defect_pixels", "aupro": "aupro"}
CURVES = {"roc": roc_curve, "pr": pr_curve}  # data/curves/<name>/<anomaly kind>.csv: the publish stage gives them to git


def write_curves(normal_scores: np.ndarray, anomaly_sets: dict[str, np.ndarray]) -> None:
    """Each anomaly kind's ROC and precision-recall curve, one small CSV each (a DVC plot)."""
    for curve, make in CURVES.items():
        for name, anomaly_scores in anomaly_sets.items():
            safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # a folder class's name may hold anything
            write_csv(f"data/curves/{curve}/{safe_name}.csv", pd.DataFrame(make(normal_scores, anomaly_scores)).round(5))


def headline(evaluation: dict, localisation: dict, false_positive_rate: float, inspection: bool) -> dict:
    """The numbers `dvc exp show` compares runs by."""
    return {
        "fp_rate": false_positive_rate,
        **{column: evaluation[name]["roc_auc"] for name, column in HEADLINE_ANOMALIES.items() if name in evaluation},
        **({"auc_patch_pixels": localisation["patch_pixel_roc_auc"]} if "patch_pixel_roc_auc" in localisation else {}),
        **{column: localisation[name] for name, column in LOCALISATION.items() if name in localisation},
        # An inspection set's defect kinds, each in `dvc exp show`.
        **({f"auc_{kind}": result["roc_auc"] for kind, result in evaluation["held_out_by_class"].items()}
           if inspection else {}),
    }


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
    by_class = {}
    if len(held_out) and classes.labelled:  # each held-out class (an inspection set's defect kind) on its own
        by_class = {classes.names[label]: group.to_numpy()
                    for label, group in images[images["role"] == "held_out"].groupby("label")["score"]}
        evaluation["held_out_by_class"] = {name: detection_metrics(normal_scores, scores, threshold)
                                           for name, scores in by_class.items()}
    write_curves(normal_scores, {**anomaly_sets, **{f"held_out_{name}": scores for name, scores in by_class.items()}})
    false_positive_rate = float(np.mean(normal_scores > threshold))
    write_json("data/metrics/anomaly.json", headline(evaluation, localisation, false_positive_rate, classes.inspection))
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
    map_kind = str(top["map_kind"]) if "map_kind" in top else "error"
    shown = images.iloc[top["index"]]
    save(most_anomalous(top["images"], top["maps"], shown["score"].to_numpy(), shown["label"].to_numpy(),
                        shown["normal"].to_numpy(), threshold, method, classes.names, classes.noun, map_kind),
         "plots/most_anomalous.png")


if __name__ == "__main__":
    exit_on_error(main)
