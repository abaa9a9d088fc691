"""The calibration check: the false-alarm rate observed on new normal images, its exact interval,
the verdict."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from aepipe.anomaly.calibration import (
    binomial_interval,
    calibration_check,
    min_calibration_images,
    too_few_line,
    verdict_line,
    wilson_interval,
)
from aepipe.anomaly.detection import per_image_threshold
from aepipe.params import ThresholdParams


def test_the_interval_is_clopper_pearsons():
    # 0 of 10: the upper bound solves (1 - p)^10 = 0.025; 10 of 10 mirrors it.
    assert binomial_interval(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1))
    assert binomial_interval(10, 10) == (pytest.approx(0.025**0.1), 1.0)
    from scipy.stats import beta  # the textbook's form: beta quantiles

    for count, n in ((17, 232), (1, 1000), (50, 5000), (499, 500)):
        expected = (beta.ppf(0.025, count, n - count + 1), beta.ppf(0.975, count + 1, n - count))
        assert binomial_interval(count, n) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # Its coverage: of many rates observed from a true 1 %, about 95 % of the intervals hold it (at
    # least, being exact).
    counts = np.random.default_rng(0).binomial(500, 0.01, size=400)
    covered = np.mean(
        [low <= 0.01 <= high for low, high in map(lambda c: binomial_interval(int(c), 500), counts)]
    )
    assert 0.93 <= covered <= 1.0


def test_the_watchs_interval_is_wilsons():
    z = NormalDist().inv_cdf(0.975)
    for count, n in ((0, 256), (3, 256), (17, 232), (1200, 120_000), (256, 256)):
        low, high = wilson_interval(count, n)
        assert 0 <= low <= count / n <= high <= 1
        # Its bounds: the rates p at which the normal approximation's score, (count/n - p) /
        # √(p(1 - p) / n), reaches ±z.
        for bound in (low, high):
            if 0 < bound < 1:
                score = (count / n - bound) / math.sqrt(bound * (1 - bound) / n)
                assert abs(score) == pytest.approx(z, rel=1e-9)
    assert wilson_interval(0, 256)[0] == 0 and wilson_interval(256, 256)[1] == 1
    counts = np.random.default_rng(0).binomial(500, 0.01, size=400)
    covered = np.mean(
        [low <= 0.01 <= high for low, high in (wilson_interval(c, 500) for c in counts)]
    )
    assert 0.9 <= covered <= 1.0


def test_a_threshold_that_keeps_its_promise_holds_and_one_on_drifted_images_does_not():
    rng = np.random.default_rng(1)
    calibration, new_normal = rng.normal(size=2000), rng.normal(size=2000)
    threshold = per_image_threshold(calibration, "quantile", 1.0, 0.99)
    held = calibration_check(int(np.sum(new_normal > threshold)), len(new_normal), 0.01)
    assert held["holds"] is True and verdict_line(held) is None
    assert held["interval"][0] <= held["rate"] <= held["interval"][1]

    # the line's light changed: good parts score higher than those that calibrated
    drifted = new_normal + 0.8
    broken = calibration_check(int(np.sum(drifted > threshold)), len(drifted), 0.01)
    assert broken["holds"] is False and broken["rate"] > broken["interval"][0] > 0.01
    line = verdict_line(broken)
    assert (
        line.startswith("calibration does not hold")
        and "promises 1.0%" in line
        and "aepipe calibrate" in line
    )

    strict = calibration_check(0, 2000, 0.01)
    assert strict["holds"] is False and "stricter" in verdict_line(strict)


def test_a_rule_that_promises_no_rate_gets_no_verdict():
    check = calibration_check(
        3, 100, ThresholdParams(k=1.0, method="mean_std", q=0.99).false_alarm_target
    )
    assert check["holds"] is None and check["target"] is None and verdict_line(check) is None
    assert ThresholdParams(k=1.0, method="quantile", q=0.99).false_alarm_target == 0.01
    with pytest.raises(ValueError, match="normal test images"):
        calibration_check(0, 0, 0.01)


def test_too_few_calibration_images_for_a_target_are_named():
    assert min_calibration_images(0.01) == 1000 and min_calibration_images(0.05) == 200
    assert (
        too_few_line(1000, 0.01) is None
        and too_few_line(5000, 0.01) is None
        and too_few_line(10, None) is None
    )
    assert too_few_line(380, 0.01) == (
        "warning: 380 calibration images for a 1.0% false-alarm target; a usable estimate needs "
        "at least 1,000 (10 expected false alarms among them)"
    )


def test_a_fitted_tail_sets_the_threshold_nearer_its_target_than_the_empirical_quantile():
    """Drawn from a known distribution, 1,000 calibration scores each time: the false-alarm rate
    each threshold really has (the exponential's tail beyond it) for a 1 % target."""
    rng = np.random.default_rng(0)
    rates = {method: [] for method in ("quantile", "gpd")}
    for _ in range(100):
        scores = rng.exponential(size=1000)
        for method, found in rates.items():
            found.append(np.exp(-per_image_threshold(scores, method, 0.0, 0.99)))
    spread = {
        method: np.sqrt(np.mean((np.array(found) - 0.01) ** 2)) for method, found in rates.items()
    }
    assert abs(np.mean(rates["gpd"]) - 0.01) < 0.0007, np.mean(rates["gpd"])
    assert spread["gpd"] < 0.9 * spread["quantile"], spread


def test_a_fitted_tail_below_its_share_is_the_empirical_quantile_and_promises_its_rate():
    scores = np.random.default_rng(1).normal(size=500)
    assert per_image_threshold(scores, "gpd", 0.0, 0.8) == np.quantile(scores, 0.8)
    assert ThresholdParams(k=1.0, method="gpd", q=0.99).false_alarm_target == 0.01
