"""Anomaly detection on per-image scores: which images calibrate and which test, thresholds, and how well
they separate anomalies, image by image and pixel by pixel."""

import numpy as np


def summary(losses: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(np.mean(losses)),
        "median": float(np.median(losses)),
        "std": float(np.std(losses)),
        "count": int(len(losses)),
    }


def mean_std_threshold(losses: np.ndarray, k: float) -> float:
    """threshold = mean + k·std (population std, as NumPy's default and the seed's)."""
    return float(np.mean(losses) + k * np.std(losses))


def per_image_threshold(scores: np.ndarray, method: str, k: float, q: float) -> float:
    """The cut on single images' scores: mean + k·std ("mean_std") or the q-quantile ("quantile")."""
    if method == "mean_std":
        return mean_std_threshold(scores, k)
    if method == "quantile":
        return float(np.quantile(scores, q))
    raise ValueError(f"unknown threshold method {method!r}")


def calibration_split(n_normal: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split normal images (by position) into those that set the threshold and those that test it.

    A seeded random split, so every stage that asks gets the same one; both parts sorted.
    """
    order = np.random.default_rng(seed).permutation(n_normal)
    n_calibration = min(max(1, round(n_normal * fraction)), n_normal - 1)
    return np.sort(order[:n_calibration]), np.sort(order[n_calibration:])


def calibration_roles(normal: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The role of each validation image: "calibration" (normal, sets the threshold), "test" (normal,
    tests it) or "held_out" (an anomalous class). Written once, by the stage that scores the images."""
    roles = np.full(len(normal), "held_out", dtype=object)
    normal_index = np.flatnonzero(normal)
    calibration, test = calibration_split(len(normal_index), fraction, seed)
    roles[normal_index[calibration]] = "calibration"
    roles[normal_index[test]] = "test"
    return roles


def pixel_roc_auc(maps: np.ndarray, masks: np.ndarray) -> float:
    """Localisation: ROC AUC of every pixel's anomaly-map value against whether it lies in the anomaly."""
    return _roc_auc(masks.ravel().astype(np.float64), maps.ravel())


def detection_metrics(normal_scores: np.ndarray, anomaly_scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking quality (ROC AUC, average precision) and the errors of flagging `score > threshold`.

    The same numbers as scikit-learn's roc_auc_score, average_precision_score and
    precision_recall_fscore_support (tested to the bit), without the second it takes to import it.
    """
    truth = np.concatenate([np.zeros(len(normal_scores)), np.ones(len(anomaly_scores))])
    scores = np.concatenate([normal_scores, anomaly_scores])
    flagged = scores > threshold
    true_positives, predicted, actual = np.sum(flagged & (truth == 1)), np.sum(flagged), len(anomaly_scores)
    return {
        "roc_auc": _roc_auc(truth, scores),
        "average_precision": _average_precision(truth, scores),
        "precision": float(true_positives / predicted) if predicted else 0.0,
        "recall": float(true_positives / actual) if actual else 0.0,
        "f1": float(2 * true_positives / (predicted + actual)) if predicted + actual else 0.0,
        "false_positive_rate": float(np.mean(flagged[: len(normal_scores)])),
        "anomalies": int(len(anomaly_scores)),
    }


def _ranked_counts(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when flagging everything at or above each distinct score, highest first."""
    order = np.argsort(scores, kind="stable")[::-1]
    scores, truth = scores[order], truth[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(truth) - 1]
    true_positives = np.cumsum(truth)[last_of_each_score]
    return true_positives, 1 + last_of_each_score - true_positives


def _roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    true_positives, false_positives = _ranked_counts(truth, scores)
    if len(false_positives) > 2:  # collinear points add nothing to the area; dropped as scikit-learn does
        corners = np.flatnonzero(np.r_[True, (np.diff(false_positives, 2) != 0) | (np.diff(true_positives, 2) != 0), True])
        true_positives, false_positives = true_positives[corners], false_positives[corners]
    false_positive_rate = np.r_[0, false_positives] / false_positives[-1]
    true_positive_rate = np.r_[0, true_positives] / true_positives[-1]
    return float(np.trapezoid(true_positive_rate, false_positive_rate))


def _average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """The step integral of precision over recall, lowest recall first."""
    true_positives, false_positives = _ranked_counts(truth, scores)
    precision = np.r_[(true_positives / (true_positives + false_positives))[::-1], 1.0]
    recall = np.r_[(true_positives / true_positives[-1])[::-1], 0.0]
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))
