"""Anomaly detection by reconstruction error: thresholds, and how well they separate anomalies."""

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


def detection_metrics(normal_scores: np.ndarray, anomaly_scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking quality (ROC AUC, average precision) and the errors of flagging `score > threshold`."""
    # Imported here: scikit-learn takes a second to import, which the threshold stage does not need.
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    truth = np.concatenate([np.zeros(len(normal_scores)), np.ones(len(anomaly_scores))])
    scores = np.concatenate([normal_scores, anomaly_scores])
    flagged = scores > threshold
    precision, recall, f1, _ = precision_recall_fscore_support(truth, flagged, average="binary", zero_division=0)
    return {
        "roc_auc": float(roc_auc_score(truth, scores)),
        "average_precision": float(average_precision_score(truth, scores)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "false_positive_rate": float(np.mean(flagged[: len(normal_scores)])),
        "anomalies": int(len(anomaly_scores)),
    }
