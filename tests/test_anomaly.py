import numpy as np
import pytest

from aepipe.anomaly import mean_std_threshold, summary


def test_threshold_is_mean_plus_k_population_std():
    losses = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, population std sqrt(1.25)
    assert mean_std_threshold(losses, k=1) == pytest.approx(2.5 + 1.25**0.5)
    assert mean_std_threshold(losses, k=0) == pytest.approx(2.5)
    assert mean_std_threshold(losses, k=2.5) == pytest.approx(2.5 + 2.5 * 1.25**0.5)


def test_summary():
    assert summary(np.array([3.0, 1.0, 2.0, 10.0])) == {"mean": 4.0, "median": 2.5, "std": pytest.approx(3.5355339), "count": 4}
