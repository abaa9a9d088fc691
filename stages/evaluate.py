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

from aepipe.anomaly.calibration import calibration_check, verdict_line
from aepipe.anomaly.evaluation import curves, evaluate, headline, scored_sets
from aepipe.anomaly.threshold_report import ThresholdReport
from aepipe.anomaly.verdicts import flag_rule
from aepipe.atomic import write_csv, write_json
from aepipe.data.dataset import load_classes
from aepipe.figures.plots import anomaly_scores, most_anomalous, save
from aepipe.params import load_params
from aepipe.run_guard import run_guarded


def write_curves(found: dict[str, pd.DataFrame]) -> None:
    """data/curves/<curve>/<anomaly kind>.csv, one small CSV each (a DVC plot; publish gives them to
    git)."""
    for name, curve in found.items():
        # a folder class's name may hold anything
        safe_name = re.sub(r"[^A-Za-z0-9_./-]", "_", name)
        write_csv(f"data/curves/{safe_name}.csv", curve)


def main() -> None:
    target = load_params("params.yaml").threshold.false_alarm_target
    report = ThresholdReport.read("reports/threshold.json")
    threshold, method = report.threshold, report.score
    images = pd.read_csv("data/scores/val_images.csv")
    classes = load_classes("data/raw")
    normal, anomaly_sets, by_class = scored_sets(
        images,
        pd.read_csv("data/scores/corrupted_images.csv"),
        classes.names if classes.labelled else None,
    )
    localisation = json.loads(Path("data/scores/localisation.json").read_text())
    evaluation = evaluate(normal, anomaly_sets, by_class, threshold)
    write_curves(curves(normal, anomaly_sets, by_class))
    calibration = calibration_check(
        int(np.sum(flag_rule(*normal, threshold))), len(normal[0]), target
    )
    if line := verdict_line(calibration):
        print(line)
    write_json(
        "data/metrics/anomaly.json",
        headline(evaluation, localisation, calibration, classes.inspection),
    )
    write_json(
        "reports/anomaly.json",
        {
            "score": method,
            "threshold": threshold,
            "normal_test_images": len(normal[0]),
            "false_positive_rate": calibration["rate"],
            "calibration": calibration,
            **evaluation,
            "localisation": localisation,
        },
    )
    _draw_scores(normal, anomaly_sets, threshold, evaluation, method)
    _draw_most_anomalous(images, threshold, method, classes)


def _draw_scores(
    normal, anomaly_sets: dict, threshold: float, evaluation: dict, method: str
) -> None:
    # The figure shows the scores themselves; dead frames that only the dead-frame check flags are
    # counted apart.
    flagged_dead = {
        name: int(np.sum(dead & (scores <= threshold)))
        for name, (scores, dead) in anomaly_sets.items()
    }
    save(
        anomaly_scores(
            normal[0],
            {name: scores for name, (scores, _) in anomaly_sets.items()},
            threshold,
            evaluation,
            method,
            flagged_dead,
        ),
        "plots/anomaly_scores.png",
    )


def _draw_most_anomalous(images: pd.DataFrame, threshold: float, method: str, classes) -> None:
    top = np.load("data/scores/most_anomalous.npz")
    shown = images.iloc[top["index"]]
    save(
        most_anomalous(
            top["images"],
            top["maps"],
            shown["score"].to_numpy(),
            shown["label"].to_numpy(),
            shown["normal"].to_numpy(),
            threshold,
            method,
            classes.names,
            classes.noun,
            str(top["map_kind"]),
        ),
        "plots/most_anomalous.png",
    )


if __name__ == "__main__":
    run_guarded(main)
