import numpy as np
import pytest
import torch

from aepipe.anomaly.corruptions import corrupt, patch
from aepipe.anomaly.detection import (
    calibration_split,
    decisive_scores,
    detection_metrics,
    mean_std_threshold,
    per_image_threshold,
    pr_curve,
    roc_curve,
    summary,
)
from aepipe.params import CorruptionParams

ALL_CORRUPTIONS = CorruptionParams(
    gaussian_noise=0.5, rotation=90, patch=8, invert=True, blank=True, saturate=True
)


def test_threshold_is_mean_plus_k_population_std():
    losses = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, population std sqrt(1.25)
    assert mean_std_threshold(losses, k=1) == pytest.approx(2.5 + 1.25**0.5)
    assert mean_std_threshold(losses, k=0) == pytest.approx(2.5)
    assert mean_std_threshold(losses, k=2.5) == pytest.approx(2.5 + 2.5 * 1.25**0.5)


def test_per_image_threshold_rules():
    scores = np.arange(1.0, 101.0)
    assert per_image_threshold(scores, "quantile", k=1, q=0.99) == pytest.approx(
        np.quantile(scores, 0.99)
    )
    assert per_image_threshold(scores, "mean_std", k=2, q=0.99) == pytest.approx(
        50.5 + 2 * np.std(scores)
    )


def test_summary():
    assert summary(np.array([3.0, 1.0, 2.0, 10.0])) == {
        "mean": 4.0,
        "median": 2.5,
        "std": pytest.approx(3.5355339),
        "count": 4,
    }


def live(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of frames none of which is dead."""
    return scores, np.zeros(len(scores), bool)


def test_perfectly_separated_scores_give_auc_1_and_exact_counts():
    normal, anomalous = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.8, 0.9])
    result = detection_metrics(live(normal), live(anomalous), threshold=0.35)
    assert result["roc_auc"] == 1.0 and result["average_precision"] == 1.0
    # 0.4 is flagged too
    assert result["recall"] == 1.0 and result["precision"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(0.8) and result["anomalies"] == 2


def test_identical_scores_give_auc_one_half():
    result = detection_metrics(live(np.full(10, 0.5)), live(np.full(5, 0.5)), threshold=0.6)
    assert result["roc_auc"] == 0.5
    assert result["recall"] == 0.0 and result["precision"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_detection_metrics_are_scikit_learns_of_the_scores_also_with_dead_frames(seed):
    """The metrics rank dense ranks (finite, where a dead frame's score is infinite): scikit-learn's
    numbers of the scores themselves, to the bit, with every tie kept."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    rng = np.random.default_rng(seed)
    # Rounded, so that many scores tie (as equal reconstruction errors do), across and within the
    # classes.
    normal = rng.gamma(2.0, 0.01, size=500).round(3)
    anomalous = (rng.gamma(2.0, 0.01, size=200) + rng.uniform(0, 0.02)).round(3)
    threshold = float(np.quantile(normal, 0.9))
    truth = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    scores = np.r_[normal, anomalous]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, scores > threshold, average="binary", zero_division=0
    )
    result = detection_metrics(live(normal), live(anomalous), threshold)
    assert result["roc_auc"] == roc_auc_score(truth, scores)
    assert result["average_precision"] == average_precision_score(truth, scores)
    assert (result["precision"], result["recall"], result["f1"]) == (precision, recall, f1)
    # dead frames, above every score and tied with one another
    dead = rng.random(len(anomalous)) < 0.2
    with_dead = detection_metrics(live(normal), (anomalous, dead), threshold)
    above_all = np.where(dead, 1e9, anomalous)
    assert with_dead["roc_auc"] == roc_auc_score(truth, np.r_[normal, above_all])
    assert with_dead["average_precision"] == average_precision_score(
        truth, np.r_[normal, above_all]
    )


def test_calibration_split_is_seeded_disjoint_and_complete():
    calibration, test = calibration_split(101, 0.5, seed=3)
    assert len(calibration) == 50 or len(calibration) == 51
    assert sorted(np.concatenate([calibration, test]).tolist()) == list(range(101))
    again, _ = calibration_split(101, 0.5, seed=3)
    other, _ = calibration_split(101, 0.5, seed=4)
    assert np.array_equal(calibration, again) and not np.array_equal(calibration, other)
    assert len(calibration_split(2, 0.9, seed=0)[1]) == 1, "at least one image must be left to test"


def test_every_corruption_is_seeded_shaped_and_in_range():
    torch.manual_seed(0)
    images = torch.rand(50, 1, 28, 28)
    corrupted = corrupt(images, ALL_CORRUPTIONS, seed=1)
    assert set(corrupted) == {"gaussian_noise", "rotation", "patch", "invert", "blank", "saturate"}
    again = corrupt(images, ALL_CORRUPTIONS, seed=1)
    for name, result in corrupted.items():
        assert result.shape == images.shape, name
        assert result.min() >= 0 and result.max() <= 1, name
        assert torch.equal(result, again[name]), name
        assert not torch.equal(result, images), name
    assert not torch.equal(
        corrupted["gaussian_noise"], corrupt(images, ALL_CORRUPTIONS, seed=2)["gaussian_noise"]
    )
    assert torch.allclose(corrupted["invert"], 1 - images)
    assert corrupted["blank"].max() == 0 and corrupted["saturate"].min() == 1


def test_disabled_corruptions_are_left_out():
    only_two = CorruptionParams(
        gaussian_noise=None, rotation=None, patch=4, invert=False, blank=True, saturate=False
    )
    assert set(corrupt(torch.zeros(3, 1, 28, 28), only_two, seed=0)) == {"patch", "blank"}


def test_patch_is_one_white_square_of_the_asked_side():
    images = torch.zeros(20, 1, 28, 28)
    patched = patch(images, side=5, seed=0)
    assert patched.sum(dim=(1, 2, 3)).tolist() == [25.0] * 20
    rows_with_white = (patched[:, 0].amax(dim=2) > 0).sum(dim=1)
    assert rows_with_white.tolist() == [5] * 20


def test_rotation_by_90_degrees_turns_a_bar():
    images = torch.zeros(1, 1, 28, 28)
    images[0, 0, 13:15, 4:24] = 1  # horizontal bar
    rotated = corrupt(
        images,
        CorruptionParams(
            gaussian_noise=None, rotation=90, patch=None, invert=False, blank=False, saturate=False
        ),
        seed=0,
    )["rotation"]
    assert rotated[0, 0, 4:24, 13:15].mean() > 0.9 and rotated[0, 0, 13:15, :4].sum() == 0


def threshold_rates(normal: np.ndarray, anomalous: np.ndarray) -> list[tuple[float, float, float]]:
    """(false-positive rate, recall, precision) of flagging `score >= t`, for every score t and
    above all."""
    rates = [(0.0, 0.0, 1.0)]
    for t in np.unique(np.r_[normal, anomalous]):
        flagged_normal, flagged_anomalous = np.sum(normal >= t), np.sum(anomalous >= t)
        rates.append(
            (
                flagged_normal / len(normal),
                flagged_anomalous / len(anomalous),
                flagged_anomalous / (flagged_normal + flagged_anomalous),
            )
        )
    return rates


def test_curves_are_the_definitions_threshold_by_threshold_on_a_fixed_grid():
    rng = np.random.default_rng(3)
    # ties included
    normal, anomalous = np.round(rng.normal(0, 1, 300), 1), np.round(rng.normal(1, 1, 80), 1)
    rates = threshold_rates(normal, anomalous)
    roc, pr = roc_curve(normal, anomalous), pr_curve(normal, anomalous)
    assert len(roc["fpr"]) == len(pr["recall"]) == 101 and roc["fpr"][-1] == pr["recall"][-1] == 1
    # the best recall whose false-positive rate is at most fpr
    for fpr, tpr in zip(roc["fpr"], roc["tpr"], strict=True):
        assert tpr == max(recall for f, recall, _ in rates if f <= fpr + 1e-12)
    # the best precision at this recall or more
    for recall, precision in zip(pr["recall"], pr["precision"], strict=True):
        assert precision == pytest.approx(max(p for _, r, p in rates[1:] if r >= recall - 1e-12))
    assert (
        roc["tpr"][-1] == 1
        and np.all(np.diff(roc["tpr"]) >= 0)
        and np.all(np.diff(pr["precision"]) <= 0)
    )


def test_dead_frames_rank_above_every_live_frame_and_tie_among_themselves():
    normal = live(np.array([0.1, 0.2, 0.9]))
    # scores the map gave a black frame
    dead = (np.array([0.05, 0.01]), np.ones(2, bool))
    assert decisive_scores(*dead).tolist() == [np.inf, np.inf]
    result = detection_metrics(normal, dead, threshold=0.5)
    assert (
        result["roc_auc"] == 1.0 and result["recall"] == 1.0 and result["average_precision"] == 1.0
    )
    # A dead normal frame ties with the dead anomalies: each beats three normals and ties one.
    with_dead_normal = (np.r_[normal[0], 0.0], np.r_[normal[1], True])
    assert detection_metrics(with_dead_normal, dead, threshold=0.5)["roc_auc"] == pytest.approx(
        3.5 / 4
    )
