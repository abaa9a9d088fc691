"""The drift watch's tests (aepipe.anomaly.drift) on streams drawn from known distributions: quiet
where nothing moved, firing the test that should fire where something did."""

import numpy as np
import pytest

from aepipe.anomaly.drift import (
    MIN_BATCH,
    GaussianKernel,
    Reference,
    Watch,
    binomial_tail,
    kolmogorov_smirnov,
    kolmogorov_survival,
)
from aepipe.errors import AepipeError

RNG = np.random.default_rng(0)
CALIBRATION = RNG.normal(0, 1, 5000)
THRESHOLD = float(np.quantile(CALIBRATION, 0.99))
REFERENCE = Reference(THRESHOLD, 0.01, CALIBRATION, RNG.normal(0, 1, (2048, 8)))
NULLS = {}  # the MMD's nulls of REFERENCE, fitted once for every watch of it here


def watched(alpha: float = 0.01) -> Watch:
    return Watch(REFERENCE, alpha=alpha, nulls=NULLS)


def batch(rng, size=256, shift=0.0, latent_shift=0.0):
    scores = rng.normal(shift, 1, size)
    return scores, scores > THRESHOLD, rng.normal(latent_shift, 1, (size, 8))


def test_a_stream_that_has_not_drifted_raises_at_most_its_share_of_false_alarms():
    rng, watch = np.random.default_rng(1), watched(alpha=0.05)
    verdicts = [watch.watch(*batch(rng)) for _ in range(200)]
    # alpha 0.05 per batch: about 10 false alarms expected; far more would be a broken null.
    assert sum(verdict.drift for verdict in verdicts) <= 20
    p_values = np.array([verdict.p_values["latents"] for verdict in verdicts])
    assert 0.3 < np.mean(p_values < 0.5) < 0.7, "the MMD's fitted null: p-values about uniform"
    last = verdicts[-1]
    assert last.batch == 200 and watch.images == 200 * 256
    assert last.running_interval[0] <= 0.01 <= last.running_interval[1]


def test_each_kind_of_drift_fires_its_own_test():
    rng = np.random.default_rng(2)
    scores = watched().watch(*batch(rng, shift=0.6))  # every score higher: more flags too
    assert {"scores", "flag_rate"} <= set(scores.fired) and scores.flag_rate > 0.03
    images = watched().watch(*batch(rng, latent_shift=0.5))  # the codes moved, the scores not
    assert images.fired == ["latents"] and images.p_values["scores"] > 0.001
    quiet = watched().watch(*batch(rng))
    assert not quiet.drift and quiet.interval[0] <= quiet.flag_rate <= quiet.interval[1]


def test_the_flag_rate_test_reads_the_promise():
    """Twelve flags in 256 where the target promises 2.56: far beyond chance; three are not."""
    watch, scores, latents = watched(), np.zeros(256), RNG.normal(0, 1, (256, 8))
    flagged = np.zeros(256, bool)
    flagged[:12] = True
    assert watch.watch(scores, flagged, latents).p_values["flag_rate"] < 1e-4
    flagged[3:] = False
    assert watch.watch(scores, flagged, latents).p_values["flag_rate"] > 0.2


def test_the_mmd_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    points = RNG.normal(0, 1, (400, 4))
    kernel = GaussianKernel(points)
    same, moved = kernel.mmd(RNG.normal(0, 1, (400, 4))), kernel.mmd(RNG.normal(1, 1, (400, 4)))
    assert abs(same) < 0.01 < moved
    assert kernel.mmd(points[:200]) < 0.01


def gram(kernel: GaussianKernel, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * kernel.bandwidth**2))


def unbiased_mmd(kernel: GaussianKernel, a: np.ndarray, b: np.ndarray) -> float:
    def own(x):
        return (gram(kernel, x, x).sum() - len(x)) / (len(x) * (len(x) - 1))

    return own(a) + own(b) - 2 * gram(kernel, a, b).mean()


def test_the_mmd_in_float32_is_the_textbook_unbiased_estimate():
    points, sample = RNG.normal(0, 1, (300, 8)), RNG.normal(0.2, 1, (64, 8))
    kernel = GaussianKernel(points)
    distances = ((points[:, None] - points[None]) ** 2).sum(-1)[np.triu_indices(300, 1)]
    assert kernel.bandwidth == pytest.approx(np.sqrt(np.median(distances)) / 2)
    assert kernel.mmd(sample) == pytest.approx(unbiased_mmd(kernel, sample, points), abs=1e-6)


def test_a_batchs_reference_sums_are_its_images_each_alone():
    """As the scoring threads compute them, a part of the batch at a time."""
    scores, flagged, latents = batch(np.random.default_rng(5))
    sums = [watched().reference_sums(part) for part in (latents[:100], latents[100:])]
    at_once = watched().watch(scores, flagged, latents)
    in_parts = watched().watch(scores, flagged, latents, np.concatenate(sums))
    assert in_parts.mmd == pytest.approx(at_once.mmd, abs=1e-9)
    assert in_parts.p_values == at_once.p_values


def test_each_null_value_is_a_split_of_the_reference_codes_read_against_the_rest():
    """The null's sums, taken from the reference's kernel matrix, are the MMD² of the drawn codes
    and the others, computed from scratch."""
    watch = Watch(Reference(THRESHOLD, 0.01, CALIBRATION, RNG.normal(0, 1, (200, 8))), seed=3)
    null = watch.null(40)
    codes = watch.reference.latents
    for draw, value in zip(range(3), null, strict=False):
        drawn = np.random.default_rng(3)
        for _ in range(draw + 1):
            chosen = drawn.choice(200, 40, replace=False)
        rest = np.setdiff1d(np.arange(200), chosen)
        expected = unbiased_mmd(GaussianKernel(codes), codes[chosen], codes[rest])
        assert value == pytest.approx(expected, abs=1e-9)


def test_too_small_a_batch_or_reference_is_refused_naming_the_minimum():
    with pytest.raises(
        AepipeError, match=f"a batch of 8 images; drift watching needs at least {MIN_BATCH}"
    ):
        watched().watch(np.zeros(8), np.zeros(8, bool), np.zeros((8, 8)))
    small = Reference(THRESHOLD, 0.01, CALIBRATION, np.zeros((10, 8)))
    with pytest.raises(
        AepipeError, match="reference holds 10 latent codes; watching needs at least 64"
    ):
        Watch(small)
    with pytest.raises(
        AepipeError, match="reference of 2048 latent codes watches batches of at most 512"
    ):
        watched().watch(*batch(RNG, size=513))
    with pytest.raises(
        AepipeError, match=r"a drift false-alarm rate of 0.001 per batch; expected at least 0.0045"
    ):
        watched(alpha=0.001)


def test_the_reference_round_trips_with_the_null_of_a_watch_batch_fitted_once():
    import json

    from aepipe.anomaly.drift import WATCH_BATCH, decode_reference, encode_reference

    text = encode_reference(
        CALIBRATION, RNG.normal(0, 1, (3000, 8)), 0.01, seed=0, model_sha256="ab"
    )
    reference, nulls = decode_reference(text, THRESHOLD)
    assert len(reference.latents) == 2048 and np.array_equal(reference.scores, CALIBRATION)
    assert (reference.threshold, reference.target, json.loads(text)["model_sha256"]) == (
        THRESHOLD,
        0.01,
        "ab",
    )
    assert set(nulls) == {WATCH_BATCH} and np.array_equal(
        nulls[WATCH_BATCH], Watch(reference).null(WATCH_BATCH)
    )


def test_codes_kept_in_the_order_of_two_populations_watch_a_mixed_stream_quietly():
    """A reference whose codes come in the order of a file of two writers' digits: the null is drawn
    between two random halves, so a stream that mixes both, as the calibration did, is not drift."""
    rng = np.random.default_rng(4)
    ordered = np.concatenate([rng.normal(0, 1, (1024, 8)), rng.normal(0.5, 1, (1024, 8))])
    watch = Watch(Reference(THRESHOLD, 0.01, CALIBRATION, ordered), alpha=0.05)
    mixed = [rng.normal(0.5 * (rng.random((256, 1)) < 0.5), 1, (256, 8)) for _ in range(20)]
    p_values = [
        watch.watch(np.zeros(256), np.zeros(256, bool), codes).p_values["latents"]
        for codes in mixed
    ]
    assert 0.05 < np.median(p_values) < 0.95 and sum(p < 0.05 / 3 for p in p_values) <= 2


def test_the_scores_test_is_scipys_statistic_with_kolmogorovs_conservative_p_value():
    from scipy.stats import binom, ks_2samp

    rng = np.random.default_rng(3)
    reference = np.sort(rng.normal(0, 1, 5000))
    for shift in (0.0, 0.1, 0.2, 0.4):
        sample = rng.normal(shift, 1, 256)
        statistic, p_value = kolmogorov_smirnov(sample, reference)
        exact = ks_2samp(sample, reference)
        assert statistic == pytest.approx(exact.statistic, abs=1e-15)
        # never below the exact p-value: it fires no more often than the exact test would
        assert exact.pvalue <= p_value <= 1.3 * exact.pvalue + 1e-300
    tied = np.round(rng.normal(0.2, 1, 256), 1)  # scores that tie, within the sample and across
    statistic, _ = kolmogorov_smirnov(tied, np.sort(np.round(reference, 1)))
    assert statistic == pytest.approx(ks_2samp(tied, np.round(reference, 1)).statistic, abs=1e-15)
    verdict = watched().watch(*batch(rng))
    expected = binom.sf(verdict.flagged - 1, verdict.images, 0.01) if verdict.flagged else 1.0
    assert verdict.p_values["flag_rate"] == pytest.approx(expected, rel=1e-9)


def test_the_binomial_and_kolmogorov_tails_are_scipys():
    from scipy.special import bdtrc, kolmogorov

    for n in (32, 256, 512):
        for count in (*range(0, 30), n // 2, n - 1, n):
            for rate in (0.001, 0.01, 0.3):
                expected = bdtrc(count - 1, n, rate) if count > 0 else 1.0
                assert binomial_tail(count, n, rate) == pytest.approx(
                    expected, rel=1e-9, abs=1e-300
                ), (count, n, rate)
    for y in (0.0, 0.03, *np.linspace(0.1, 4, 400), 0.8, np.nextafter(0.8, 0)):
        assert kolmogorov_survival(y) == pytest.approx(kolmogorov(y), rel=1e-12, abs=1e-15), y
