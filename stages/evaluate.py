"""Stage evaluate: how well the per-image threshold separates anomalies from normal images.

Normal images: the normal validation images the score stage marked for testing (not those that
calibrated the threshold). Anomalies: the held-out classes (in one-class mode) and each synthetic
corruption of the normal test images, all scored by the score stage: this one runs no model.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from aepipe.atomic import write_csv, write_json
from aepipe.anomaly.calibration import calibration_check, verdict_line
from aepipe.data.dataset import load_classes
from aepipe.anomaly.detection import DEAD_FRAME, decisive_scores, detection_metrics, pr_curve, roc_curve
from aepipe.anomaly.verdicts import flag_rule
from guard import run_guarded
from aepipe.params import load_params
from aepipe.figures.plots import anomaly_scores, most_anomalous, save

# Shown in `dvc exp show`: the anomalies that tell models and scores apart (noise and inversion are
# caught by every model), and a failed camera's frames. All of them are in reports/anomaly.json.
HEADLINE_ANOMALIES = {"held_out_digits": "auc_held_out", "rotation": "auc_rotation", "patch": "auc_patch",
                      "blank": "auc_blank", "saturate": "auc_saturate"}
# An inspection set's defects located pixel by pixel (the score stage's names → the metrics').
LOCALISATION = {"pixel_roc_auc": "auc_defect_pixels", "aupro": "aupro"}
CURVES = {"roc": roc_curve, "pr": pr_curve}  # data/curves/<name>/<anomaly kind>.csv: the publish stage gives them to git


def write_curves(normal_scores: np.ndarray, anomaly_sets: dict[str, np.ndarray]) -> None:
    """Each anomaly kind's ROC and precision-recall curve, one small CSV each (a DVC plot)."""
    for curve, make in CURVES.items():
        for name, kind_scores in anomaly_sets.items():
            safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # a folder class's name may hold anything
            write_csv(f"data/curves/{curve}/{safe_name}.csv", pd.DataFrame(make(normal_scores, kind_scores)).round(5))


def calibration_headline(check: dict) -> dict:
    """The false-alarm rate beside its target, its interval and the verdict, for `dvc exp show`."""
    return {
        "fp_rate": check["rate"],
        **({"fp_target": check["target"]} if check["target"] is not None else {}),
        "fp_rate_low": check["interval"][0],
        "fp_rate_high": check["interval"][1],
        **({"calibration_holds": check["holds"]} if check["holds"] is not None else {}),
    }


def headline(evaluation: dict, localisation: dict, calibration: dict, inspection: bool) -> dict:
    """The numbers `dvc exp show` compares runs by."""
    return {
        **calibration_headline(calibration),
        **{column: evaluation[name]["roc_auc"] for name, column in HEADLINE_ANOMALIES.items() if name in evaluation},
        **({"auc_patch_pixels": localisation["patch_pixel_roc_auc"]} if "patch_pixel_roc_auc" in localisation else {}),
        **{column: localisation[name] for name, column in LOCALISATION.items() if name in localisation},
        # The blur `anomaly.map_sigma: auto` chose from the set's calibration images: runs differ by it.
        **({"map_sigma": localisation["map_sigma_choice"]["sigma"]} if "map_sigma_choice" in localisation else {}),
        # An inspection set's defect kinds, each in `dvc exp show`.
        **({f"auc_{kind}": result["roc_auc"] for kind, result in evaluation["held_out_by_class"].items()}
           if inspection else {}),
    }


Scored = tuple[np.ndarray, np.ndarray]  # an image set's scores and which of its frames are dead


def scored_sets(images: pd.DataFrame, corrupted: pd.DataFrame, classes) -> tuple[Scored, dict, dict]:
    """The normal test images; the anomaly sets (the held-out classes, each corruption); and each
    held-out class on its own where the classes have names (an inspection set's defect kinds)."""
    def scored(frame: pd.DataFrame) -> Scored:
        return frame["score"].to_numpy(), frame[DEAD_FRAME].to_numpy(bool)

    held_out = images[images["role"] == "held_out"]
    anomaly_sets = {"held_out_digits": scored(held_out)} if len(held_out) else {}
    anomaly_sets |= {name: (corrupted[name].to_numpy(), corrupted[f"{name}.{DEAD_FRAME}"].to_numpy(bool))
                     for name in corrupted.columns if name != "index" and not name.endswith(f".{DEAD_FRAME}")}
    by_class = ({classes.names[label]: scored(group) for label, group in held_out.groupby("label")}
                if len(held_out) and classes.labelled else {})
    return scored(images[images["role"] == "test"]), anomaly_sets, by_class


def evaluate(normal: Scored, anomaly_sets: dict[str, Scored], by_class: dict[str, Scored], threshold: float) -> dict:
    """detection_metrics of every anomaly set against the normal test images, on the scores as the
    flags read them (dead frames flagged whatever their score)."""
    normal_scores = decisive_scores(*normal)
    evaluation = {name: detection_metrics(normal_scores, decisive_scores(*pair), threshold) for name, pair in anomaly_sets.items()}
    if by_class:
        evaluation["held_out_by_class"] = {name: detection_metrics(normal_scores, decisive_scores(*pair), threshold)
                                           for name, pair in by_class.items()}
    write_curves(normal_scores, {name: decisive_scores(*pair) for name, pair in
                                 {**anomaly_sets, **{f"held_out_{name}": pair for name, pair in by_class.items()}}.items()})
    return evaluation


def main() -> None:
    target = load_params("params.yaml").threshold.false_alarm_target
    threshold_report = json.loads(Path("reports/threshold.json").read_text())["per_image"]
    threshold, method = threshold_report["threshold"], threshold_report["score"]
    images = pd.read_csv("data/scores/val_images.csv")
    classes = load_classes("data/raw")
    normal, anomaly_sets, by_class = scored_sets(images, pd.read_csv("data/scores/corrupted_images.csv"), classes)
    localisation = json.loads(Path("data/scores/localisation.json").read_text())
    evaluation = evaluate(normal, anomaly_sets, by_class, threshold)
    calibration = calibration_check(int(np.sum(flag_rule(*normal, threshold))), len(normal[0]), target)
    if line := verdict_line(calibration):
        print(line)
    write_json("data/metrics/anomaly.json", headline(evaluation, localisation, calibration, classes.inspection))
    write_json("reports/anomaly.json", {
        "score": method,
        "threshold": threshold,
        "normal_test_images": len(normal[0]),
        "false_positive_rate": calibration["rate"],
        "calibration": calibration,
        **evaluation,
        "localisation": localisation,
    })
    # The figure shows the scores themselves; dead frames that only the dead-frame check flags are counted apart.
    flagged_dead = {name: int(np.sum(dead & (scores <= threshold))) for name, (scores, dead) in anomaly_sets.items()}
    save(anomaly_scores(normal[0], {name: scores for name, (scores, _) in anomaly_sets.items()}, threshold, evaluation,
                        method, flagged_dead), "plots/anomaly_scores.png")
    top = np.load("data/scores/most_anomalous.npz")
    map_kind = str(top["map_kind"]) if "map_kind" in top else "error"
    shown = images.iloc[top["index"]]
    save(most_anomalous(top["images"], top["maps"], shown["score"].to_numpy(), shown["label"].to_numpy(),
                        shown["normal"].to_numpy(), threshold, method, classes.names, classes.noun, map_kind),
         "plots/most_anomalous.png")


if __name__ == "__main__":
    run_guarded(main)
