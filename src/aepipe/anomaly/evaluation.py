"""How well a threshold separates anomalies from normal images, from the scores the score stage
wrote: the image sets (normal test images, each anomaly kind), their detection metrics and curves,
and the headline numbers `dvc exp show` compares runs by. NumPy and pandas: the evaluate stage runs
no model."""

import pandas as pd

from aepipe.anomaly.detection import (
    DEAD_FRAME,
    Scored,
    decisive_scores,
    detection_metrics,
    pr_curve,
    roc_curve,
)

# Shown in `dvc exp show`: the anomalies that tell models and scores apart (noise and inversion are
# caught by every model), and a failed camera's frames. All of them are in reports/anomaly.json.
HEADLINE_ANOMALIES = {
    "held_out_digits": "auc_held_out",
    "rotation": "auc_rotation",
    "patch": "auc_patch",
    "blank": "auc_blank",
    "saturate": "auc_saturate",
}
# An inspection set's defects located pixel by pixel (the score stage's names → the metrics').
LOCALISATION = {"pixel_roc_auc": "auc_defect_pixels", "aupro": "aupro"}
CURVES = {"roc": roc_curve, "pr": pr_curve}


def scored_sets(
    images: pd.DataFrame, corrupted: pd.DataFrame, names: list[str] | None
) -> tuple[Scored, dict, dict]:
    """The normal test images; the anomaly sets (the held-out classes, each corruption); and each
    held-out class on its own where the classes have `names` (an inspection set's defect kinds)."""

    def scored(frame: pd.DataFrame) -> Scored:
        return frame["score"].to_numpy(), frame[DEAD_FRAME].to_numpy(bool)

    held_out = images[images["role"] == "held_out"]
    anomaly_sets = {"held_out_digits": scored(held_out)} if len(held_out) else {}
    anomaly_sets |= {
        name: (corrupted[name].to_numpy(), corrupted[f"{name}.{DEAD_FRAME}"].to_numpy(bool))
        for name in corrupted.columns
        if name != "index" and not name.endswith(f".{DEAD_FRAME}")
    }
    by_class = (
        {names[label]: scored(group) for label, group in held_out.groupby("label")}
        if len(held_out) and names
        else {}
    )
    return scored(images[images["role"] == "test"]), anomaly_sets, by_class


def evaluate(
    normal: Scored, anomaly_sets: dict[str, Scored], by_class: dict[str, Scored], threshold: float
) -> dict:
    """detection_metrics of every anomaly set against the normal test images."""
    evaluation = {
        name: detection_metrics(normal, pair, threshold) for name, pair in anomaly_sets.items()
    }
    if by_class:
        evaluation["held_out_by_class"] = {
            name: detection_metrics(normal, pair, threshold) for name, pair in by_class.items()
        }
    return evaluation


def curves(
    normal: Scored, anomaly_sets: dict[str, Scored], by_class: dict[str, Scored]
) -> dict[str, pd.DataFrame]:
    """Each anomaly kind's ROC and precision-recall curve ("roc/<kind>", "pr/<kind>"), rounded to 5
    digits."""
    kinds = {**anomaly_sets, **{f"held_out_{name}": pair for name, pair in by_class.items()}}
    return {
        f"{curve}/{name}": pd.DataFrame(
            make(decisive_scores(*normal), decisive_scores(*pair))
        ).round(5)
        for curve, make in CURVES.items()
        for name, pair in kinds.items()
    }


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
        **{
            column: evaluation[name]["roc_auc"]
            for name, column in HEADLINE_ANOMALIES.items()
            if name in evaluation
        },
        **(
            {"auc_patch_pixels": localisation["patch_pixel_roc_auc"]}
            if "patch_pixel_roc_auc" in localisation
            else {}
        ),
        **{
            column: localisation[name]
            for name, column in LOCALISATION.items()
            if name in localisation
        },
        # The blur `anomaly.map_sigma: auto` chose from the set's calibration images: runs differ by
        # it.
        **(
            {"map_sigma": localisation["map_sigma_choice"]["sigma"]}
            if "map_sigma_choice" in localisation
            else {}
        ),
        # An inspection set's defect kinds, each in `dvc exp show`.
        **(
            {
                f"auc_{kind}": result["roc_auc"]
                for kind, result in evaluation["held_out_by_class"].items()
            }
            if inspection
            else {}
        ),
    }
