"""Whether a per-image threshold keeps its promise: the false-alarm rate it was set for (the target)
against the rate observed on normal images it never saw, with an exact binomial interval."""

import math
import statistics

CONFIDENCE = 0.95
# With n calibration images the empirical (1 - target)-quantile flags new normal images at a rate
# whose spread is about target·√((1 - target) / (n·target)): n·target = 10 expected exceedances
# put it within ±32 % of the target (one standard deviation); fewer, and the threshold is a guess.
EXCEEDANCES_NEEDED = 10


def min_calibration_images(target: float) -> int:
    """How many normal images a quantile threshold for this false-alarm target needs to be
    usable."""
    return math.ceil(EXCEEDANCES_NEEDED / target - 1e-9)


def binomial_interval(count: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate observed as `count` out of `n`: the rates
    under which so few, or so many, would be seen only (1 - confidence) / 2 of the time; the beta
    distribution's quantiles that define it."""
    from scipy.special import betaincinv  # 0.3 s to import: only where an interval is asked for

    tail = (1 - confidence) / 2
    low = 0.0 if count == 0 else float(betaincinv(count, n - count + 1, tail))
    high = 1.0 if count == n else float(betaincinv(count + 1, n - count, 1 - tail))
    return low, high


def wilson_interval(count: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson (score) interval of a rate observed as `count` out of `n`: the rates at which the
    normal approximation's two-sided test would just pass that count. The drift watch's, on every
    batch of a line: a closed form, where the exact interval's beta quantiles would import
    scipy.special (about 0.2 s, as long as scoring 512 images takes)."""
    z = statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    centre = (count + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(count * (n - count) / n + z * z / 4)
    return 0.0 if count == 0 else centre - half, 1.0 if count == n else centre + half


def calibration_check(false_alarms: int, normal_images: int, target: float | None) -> dict:
    """The observed false-alarm rate, its interval, and whether the target lies inside it (`holds`;
    None where the threshold promised no rate: a mean + k·std rule)."""
    if normal_images < 1:
        raise ValueError("a calibration check needs normal test images")
    low, high = binomial_interval(false_alarms, normal_images)
    return {
        "target": target,
        "false_alarms": false_alarms,
        "normal_images": normal_images,
        "rate": false_alarms / normal_images,
        "interval": [low, high],
        "holds": None if target is None else bool(low <= target <= high),
    }


def verdict_line(check: dict) -> str | None:
    """One line for the operator where the threshold does not keep its promise, saying what to
    do."""
    if check["holds"] is not False:
        return None
    observed = (
        f"{check['rate']:.1%} of {check['normal_images']:,} normal test images flagged (95 % "
        f"interval {check['interval'][0]:.1%}–{check['interval'][1]:.1%}) where the threshold "
        f"promises {check['target']:.1%}"
    )
    if check["rate"] > check["target"]:
        advice = (
            "new good images score higher than the calibration images: calibrate on more good "
            "images, taken as the line varies (an inspection set's validation/good/, "
            "anomaly.calibration_fraction), or on the line's own (aepipe calibrate)"
        )
    else:
        advice = (
            "the threshold is stricter than it needs, and misses defects it could flag: "
            "calibrate on more good images, taken as the line varies, or on the line's own "
            "(aepipe calibrate)"
        )
    return f"calibration does not hold: {observed}; {advice}"


def too_few_line(calibration_images: int, target: float | None) -> str | None:
    """One line where the calibration images are too few for the target to be estimated."""
    if target is None or calibration_images >= min_calibration_images(target):
        return None
    return (
        f"warning: {calibration_images:,} calibration images for a {target:.1%} false-alarm "
        f"target; a usable estimate needs at least {min_calibration_images(target):,} "
        f"({EXCEEDANCES_NEEDED} expected false alarms among them)"
    )
