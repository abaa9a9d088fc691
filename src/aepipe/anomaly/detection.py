"""Anomaly detection on per-image scores: which images calibrate and which test, thresholds, and how
well they separate anomalies, image by image and pixel by pixel."""

import numpy as np

from aepipe.anomaly.verdicts import flag_rule

AUPRO_FPR_LIMIT = 0.3  # MVTec AD's and anomalib's integration limit
DEAD_FRAME = "dead_frame"  # the column, beside a score, that says a frame is dead
# of the calibration scores, the highest: the tail a generalised Pareto is fitted to
TAIL_SHARE = 0.1

Scored = tuple[np.ndarray, np.ndarray]  # an image set's scores and which of its frames are dead


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
    """The cut on single images' scores: mean + k·std ("mean_std"), the empirical q-quantile
    ("quantile") or that of a fitted tail ("gpd")."""
    if method == "mean_std":
        return mean_std_threshold(scores, k)
    if method == "quantile":
        return float(np.quantile(scores, q))
    if method == "gpd":
        return tail_quantile(scores, q)
    raise ValueError(f"unknown threshold method {method!r}")


def tail_quantile(scores: np.ndarray, q: float) -> float:
    """The q-quantile of the scores from a generalised Pareto distribution fitted (maximum
    likelihood) to their excesses over the (1 - TAIL_SHARE)-quantile: peaks over threshold (Pickands
    1975), which reads the shape of the tail from its highest tenth instead of the few scores above
    q. A q inside the body (1 - q ≥ TAIL_SHARE) is the empirical quantile."""
    # here: scipy.stats takes 0.6–0.9 s to import, and the serving install never fits a threshold
    from scipy.stats import genpareto

    base = float(np.quantile(scores, 1 - TAIL_SHARE))
    excesses = scores[scores > base] - base
    if 1 - q >= TAIL_SHARE or len(excesses) < 2:
        return float(np.quantile(scores, q))
    shape, _, scale = genpareto.fit(excesses, floc=0)
    return base + float(genpareto.ppf(1 - (1 - q) / TAIL_SHARE, shape, loc=0, scale=scale))


def calibration_split(n_normal: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split normal images (by position) into those that set the threshold and those that test it.

    A seeded random split, so every stage that asks gets the same one; both parts sorted.
    """
    order = np.random.default_rng(seed).permutation(n_normal)
    n_calibration = min(max(1, round(n_normal * fraction)), n_normal - 1)
    return np.sort(order[:n_calibration]), np.sort(order[n_calibration:])


def calibration_roles(normal: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The role of each validation image: "calibration" (normal, sets the threshold), "test"
    (normal, tests it) or "held_out" (an anomalous class). Written once, by the stage that scores
    the images."""
    roles = np.full(len(normal), "held_out", dtype=object)
    normal_index = np.flatnonzero(normal)
    calibration, test = calibration_split(len(normal_index), fraction, seed)
    roles[normal_index[calibration]] = "calibration"
    roles[normal_index[test]] = "test"
    return roles


def given_roles(normal: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """The roles of `calibration_roles` where the dataset says which images calibrate (an inspection
    set: its share of train/good); the other normal images test, the anomalous ones are held out."""
    return np.where(calibration == 1, "calibration", np.where(normal, "test", "held_out")).astype(
        object
    )


def decisive_scores(scores: np.ndarray, dead_frames: np.ndarray) -> np.ndarray:
    """The scores as flags and rankings read them: a dead frame (aepipe.anomaly.scores) is flagged
    whatever its score says, above every threshold and every live frame."""
    return np.where(dead_frames, np.inf, scores)


# (N, H, W), or a list of (H, W) maps of any sizes (tiled scans)
Maps = np.ndarray | list[np.ndarray]


def pixels(maps: Maps) -> np.ndarray:
    """Every pixel of every map, in one flat array: image by image, row by row."""
    return (
        maps.ravel()
        if isinstance(maps, np.ndarray)
        else np.concatenate([each.ravel() for each in maps])
    )


def pixel_roc_auc(maps: Maps, masks: Maps) -> float:
    """Localisation: ROC AUC of every pixel's anomaly-map value against whether it lies in the
    anomaly."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(pixels(masks) > 0, pixels(maps)))


def aupro(maps: Maps, masks: Maps, fpr_limit: float = AUPRO_FPR_LIMIT) -> float:
    """Area under the per-region-overlap curve up to a false-positive rate of `fpr_limit`, divided
    by it (1 is perfect): MVTec AD's localisation metric (Bergmann et al., IJCV 2021; its
    evaluation code's compute_pro, and anomalib's AUPRO, which it matches:
    bench/studies/metric_check.py). Every connected defect region (8-connected: a diagonal scratch
    is one) weighs the same however large it is; the false-positive rate counts the pixels outside
    every defect, over all images.

    One sweep over the pixels sorted by map value gives the curve exactly: lowering the threshold
    past a pixel adds 1 / (its region's size × the number of regions) to the mean overlap, or
    1 / (normal pixels) to the false-positive rate."""
    from scipy.ndimage import label  # only where masks exist

    weights = [np.zeros(mask.shape) for mask in masks]
    regions = [label(mask > 0, structure=np.ones((3, 3))) for mask in masks]
    total_regions = sum(count for _, count in regions)
    normal = pixels(masks) == 0
    if total_regions == 0 or not normal.any():
        raise ValueError("AUPRO needs defect regions and pixels outside them")
    for weight, (labelled, _) in zip(weights, regions, strict=True):
        sizes = np.bincount(labelled.ravel())
        weight[labelled > 0] = 1 / (sizes[labelled[labelled > 0]] * total_regions)
    order = np.argsort(pixels(maps), kind="stable")[::-1]
    values = pixels(maps)[order]
    last_of_each_value = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]
    fpr = np.r_[0, np.cumsum(normal[order])[last_of_each_value] / normal.sum()]
    pro = np.r_[0, np.cumsum(pixels(weights)[order])[last_of_each_value]]
    inside = fpr <= fpr_limit
    fpr_cut, pro_cut = (
        np.r_[fpr[inside], fpr_limit],
        np.r_[pro[inside], np.interp(fpr_limit, fpr, pro)],
    )
    return float(np.trapezoid(pro_cut, fpr_cut) / fpr_limit)


def detection_metrics(normal: Scored, anomaly: Scored, threshold: float) -> dict[str, float]:
    """Ranking quality (ROC AUC, average precision) of an anomaly set's (scores, dead frames)
    against the normal images', ranked as `decisive_scores` gives them, and the errors of its flags
    (aepipe.anomaly.verdicts.flag_rule)."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    normal_scores, anomaly_scores = decisive_scores(*normal), decisive_scores(*anomaly)
    truth, ranks = _truth_and_ranks(normal_scores, anomaly_scores)
    flagged = flag_rule(np.r_[normal[0], anomaly[0]], np.r_[normal[1], anomaly[1]], threshold)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, flagged, average="binary", zero_division=0.0
    )
    return {
        "roc_auc": float(roc_auc_score(truth, ranks)),
        "average_precision": float(average_precision_score(truth, ranks)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "anomalies": int(len(anomaly_scores)),
    }


def image_roc_auc(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """ROC AUC of the anomalies' scores against the normal images' (detection_metrics' alone)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(*_truth_and_ranks(normal_scores, anomaly_scores)))


def _truth_and_ranks(
    normal_scores: np.ndarray, anomaly_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """1 for each anomaly, and every score's dense rank: the same order and ties as the scores, but
    finite (scikit-learn refuses a dead frame's infinite score)."""
    from scipy.stats import rankdata

    truth = np.r_[np.zeros(len(normal_scores), int), np.ones(len(anomaly_scores), int)]
    return truth, rankdata(np.r_[normal_scores, anomaly_scores], method="dense").astype(np.float64)


# the grid curves are sampled on: small files, the same x in every run, so runs overlay
CURVE_POINTS = 101
# a rate of 7/20 counts as reaching the grid's 0.35 (0.35000000000000003 in floats)
GRID_SLACK = 1e-9


def roc_curve(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> dict[str, np.ndarray]:
    """The ROC curve on a fixed grid of false-positive rates: at each, the largest true-positive
    rate of a threshold whose false-positive rate is at most it (the curve's upper-left
    staircase)."""
    from sklearn import metrics

    fpr, tpr, _ = metrics.roc_curve(
        *_truth_and_ranks(normal_scores, anomaly_scores), drop_intermediate=False
    )
    grid = np.linspace(0, 1, CURVE_POINTS)
    return {"fpr": grid, "tpr": tpr[np.searchsorted(fpr, grid + GRID_SLACK, side="right") - 1]}


def pr_curve(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> dict[str, np.ndarray]:
    """The precision-recall curve (anomalies are the positives) on a fixed grid of recalls, each the
    interpolated precision: the best precision at that recall or more (as in Pascal VOC's AP)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(*_truth_and_ranks(normal_scores, anomaly_scores))
    # highest threshold first, without (1, 0)
    precision, recall = precision[:-1][::-1], recall[:-1][::-1]
    best_from_here = np.maximum.accumulate(precision[::-1])[::-1]
    grid = np.linspace(0, 1, CURVE_POINTS)
    # the first threshold whose recall is at least the grid's
    reached = np.searchsorted(recall, grid - GRID_SLACK, side="left")
    return {"recall": grid, "precision": np.r_[best_from_here, 0.0][reached]}
