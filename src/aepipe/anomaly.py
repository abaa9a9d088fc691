"""The seed's anomaly threshold: a cut on reconstruction loss above the normal spread."""

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
