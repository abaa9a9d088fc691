"""The evaluate stage's computation (aepipe.anomaly.evaluation) on tables worked out by hand."""

import pandas as pd

from aepipe.anomaly.calibration import calibration_check
from aepipe.anomaly.evaluation import curves, evaluate, headline, scored_sets

# Four normal test images, two that calibrated (never evaluated), three held out of two classes.
IMAGES = pd.DataFrame(
    {
        "label": [0, 0, 0, 0, 0, 0, 1, 1, 2],
        "score": [0.1, 0.2, 0.3, 0.4, 9.0, 9.0, 0.5, 0.6, 0.05],
        "role": ["test"] * 4 + ["calibration"] * 2 + ["held_out"] * 3,
        "dead_frame": [False] * 8 + [True],
    }
)
CORRUPTED = pd.DataFrame({"index": [0, 1], "blank": [0.0, 0.0], "blank.dead_frame": [True, True]})


def test_the_image_sets_are_the_test_images_and_each_kind_of_anomaly():
    normal, anomaly_sets, by_class = scored_sets(IMAGES, CORRUPTED, ["good", "scratch", "stain"])
    assert normal[0].tolist() == [0.1, 0.2, 0.3, 0.4] and not normal[1].any(), (
        "calibration images are not tested"
    )
    assert sorted(anomaly_sets) == ["blank", "held_out_digits"] and anomaly_sets["blank"][1].all()
    assert sorted(by_class) == ["scratch", "stain"] and by_class["stain"][1].tolist() == [True]
    assert scored_sets(IMAGES, CORRUPTED, None)[2] == {}, "classes without names: no per-class sets"


def test_dead_frames_count_as_flagged_and_rank_above_every_score():
    normal, anomaly_sets, by_class = scored_sets(IMAGES, CORRUPTED, ["good", "scratch", "stain"])
    evaluation = evaluate(normal, anomaly_sets, by_class, threshold=0.45)
    # The held-out scores 0.5, 0.6 and a dead frame's 0.05: all above every normal score as the
    # flags read them.
    assert (
        evaluation["held_out_digits"]["roc_auc"] == 1.0
        and evaluation["held_out_digits"]["recall"] == 1.0
    )
    assert evaluation["blank"]["recall"] == 1.0 and evaluation["blank"]["precision"] == 1.0
    assert evaluation["held_out_by_class"]["stain"]["roc_auc"] == 1.0
    drawn = curves(normal, anomaly_sets, by_class)
    assert sorted(drawn) == sorted(
        f"{curve}/{kind}"
        for curve in ("roc", "pr")
        for kind in ("held_out_digits", "blank", "held_out_scratch", "held_out_stain")
    )
    assert drawn["roc/blank"]["tpr"].iloc[0] == 1.0, (
        "every blank frame flagged before any normal image"
    )


def test_the_headline_holds_what_dvc_exp_show_compares():
    normal, anomaly_sets, by_class = scored_sets(IMAGES, CORRUPTED, ["good", "scratch", "stain"])
    evaluation = evaluate(normal, anomaly_sets, by_class, threshold=0.35)
    calibration = calibration_check(1, 4, 0.01)
    shown = headline(evaluation, {"pixel_roc_auc": 0.9, "aupro": 0.7}, calibration, inspection=True)
    # One of four flagged: 25 %, but four images cannot tell 25 % from the 1 % target.
    assert (
        shown["fp_rate"] == 0.25
        and shown["fp_target"] == 0.01
        and shown["calibration_holds"] is True
    )
    assert (
        shown["auc_held_out"] == 1.0 and shown["auc_blank"] == 1.0 and "auc_rotation" not in shown
    )
    assert (shown["auc_defect_pixels"], shown["aupro"], shown["auc_stain"]) == (0.9, 0.7, 1.0)
    assert "auc_stain" not in headline(evaluation, {}, calibration, inspection=False)
    assert shown["fp_rate_low"] < 0.01 < 0.25 < shown["fp_rate_high"] < 1
