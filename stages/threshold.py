"""Stage threshold: the seed's per-batch threshold and a per-image one, with the loss histograms.

Per batch (the seed's rule): mean + k·std of the per-batch validation losses. Per image: mean +
k·std or a quantile of the anomaly scores of the normal validation images the score stage marked for
calibration.
"""

import json
from pathlib import Path

import pandas as pd

from aepipe.anomaly.calibration import too_few_line
from aepipe.anomaly.detection import mean_std_threshold, per_image_threshold, summary
from aepipe.atomic import file_sha256, write_json
from aepipe.figures.plots import loss_histograms, save
from aepipe.params import load_params
from aepipe.run_guard import run_guarded


def main() -> None:
    params = load_params("params.yaml")
    rule = params.threshold
    batches = {
        split: pd.read_csv(f"data/scores/{split}_batches.csv")["loss"].to_numpy()
        for split in ("train", "val")
    }
    per_batch = mean_std_threshold(batches["val"], rule.k)

    images = pd.read_csv("data/scores/val_images.csv")
    calibration_scores = images.loc[images["role"] == "calibration", "score"].to_numpy()
    per_image = per_image_threshold(calibration_scores, rule.method, rule.k, rule.q)
    if line := too_few_line(len(calibration_scores), rule.false_alarm_target):
        print(line)
    score = json.loads(Path("models/anomaly_score.json").read_text())
    # A map_max score is the peak of the blurred anomaly map: the pixels above the per-image
    # threshold are the defect's mask, and an image is flagged exactly when its mask is not empty.
    per_pixel = (
        {"per_pixel": {"threshold": per_image, **score["maps"]}} if score.get("maps") else {}
    )

    # the headline; the rest below
    write_json("data/metrics/threshold.json", {"threshold": per_image})
    write_json(
        "reports/threshold.json",
        {
            "per_batch": {
                "rule": "mean + k * std of per-batch validation losses (the seed's)",
                "k": rule.k,
                "threshold": per_batch,
                "train": summary(batches["train"]),
                "val": summary(batches["val"]),
            },
            "per_image": {
                "rule": {
                    "mean_std": "mean + k * std",
                    "quantile": f"quantile {rule.q:g}",
                    "gpd": f"quantile {rule.q:g} of a generalised Pareto tail",
                }[rule.method],
                "score": score["method"],
                "threshold": per_image,
                "calibration": summary(calibration_scores),
            },
            **per_pixel,
            "model_sha256": file_sha256("models/model.pt"),
            "score_sha256": file_sha256("models/anomaly_score.json"),
        },
    )
    save(loss_histograms(batches, per_batch, rule.k), "plots/loss_histograms.png")


if __name__ == "__main__":
    run_guarded(main)
