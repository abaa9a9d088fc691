"""Whether a detector's promise still holds on the line, batch by batch: the tests a watched batch
of scored images goes through, against the reference the detector carries from its calibration.

- The promise: the batch's flag rate against the false-alarm target, one-sided binomial (a rate
  above the target is what a line notices), with its Wilson interval and the stream's running
  rate.
- The scores: two-sample Kolmogorov–Smirnov of the batch's scores against the calibration scores.
- The images: the maximum mean discrepancy (MMD², a Gaussian kernel of half the codes' median
  distance) of the batch's latent codes against the reference codes, read against a null fitted
  once per batch size from random splits of those codes: a shift the scores do not show yet.

A stream tests many times. Each batch's three tests share its false-alarm budget `alpha`
(Bonferroni: alpha / 3 each), so at most `alpha` of the batches of a stream that has not drifted
are declared drifted, whatever its length; over a horizon of H batches, at most alpha·H expected
false alarms (alpha / H bounds the chance of any). NumPy alone: no torch, and no SciPy, whose
import would cost a short run of `aepipe score` more than its scoring.
"""

import base64
import json
import math
from dataclasses import dataclass, field

import numpy as np

from aepipe.anomaly.calibration import wilson_interval
from aepipe.errors import AepipeError

TESTS = ("flag_rate", "scores", "latents")
MIN_BATCH = 32  # images: below it neither KS nor the MMD tells a shift from chance
# Splits of the reference codes for the MMD's null, per batch size (about 1 s on 2 cores, once):
# p-values down to 1/2001, so that alpha / 3 down to 0.0015 can fire.
NULL_DRAWS = 2000
# The kernel's bandwidth is read off the distances between the first 512 reference codes (a
# detector carries its codes in random order): 130,000 pairs place their median within a fraction
# of a percent, at a twentieth of the cost of all of them, which every watch's start pays.
BANDWIDTH_POINTS = 512
# The kernel's bandwidth, a share of the codes' median distance: the median itself blurs away shifts
# as faint as a noise of σ 0.02 on MNIST's pixels (bench/studies/drift_kernels.py).
WIDTH = 0.5


@dataclass(frozen=True)
class Reference:
    """What the detector promised and saw at calibration: its threshold and false-alarm target, the
    calibration images' scores, and the latent codes of a sample of them (an even number)."""

    threshold: float
    target: float
    scores: np.ndarray  # (N,)
    latents: np.ndarray  # (M, latent_dim)


@dataclass(frozen=True)
class Verdict:
    """One watched batch: its numbers, each test's p-value, and which tests fired."""

    batch: int  # 1, 2, ...
    images: int
    flagged: int
    flag_rate: float
    interval: tuple[float, float]  # the flag rate's 95 % Wilson interval
    running_rate: float  # over every batch watched so far
    running_interval: tuple[float, float]
    ks_statistic: float
    mmd: float
    p_values: dict[str, float]  # per test in TESTS
    fired: list[str]  # the tests whose p-value fell below their share of alpha

    @property
    def drift(self) -> bool:
        return bool(self.fired)


@dataclass
class Watch:
    """A stream's watcher: `watch(scores, flagged, latents)` of each batch, in order, gives its
    Verdict."""

    reference: Reference
    alpha: float = 0.01
    seed: int = 0
    batches: int = 0
    images: int = 0
    flagged: int = 0
    # The MMD's nulls by batch size: watches of one reference, seed and width may share them.
    nulls: dict[int, np.ndarray] = field(default_factory=dict)
    width: float = WIDTH  # the kernel's bandwidth, a share of the codes' median distance

    def __post_init__(self):
        if not 3 / (NULL_DRAWS + 1) <= self.alpha / len(TESTS) < 1:
            raise AepipeError(
                f"a drift false-alarm rate of {self.alpha:g} per batch; expected at least "
                f"{3 * len(TESTS) / (NULL_DRAWS + 1):.2g} (the latents' test resolves p-values "
                f"down to 1/{NULL_DRAWS + 1}) and below 1"
            )
        if len(self.reference.latents) < 2 * MIN_BATCH:
            raise AepipeError(
                f"the detector's reference holds {len(self.reference.latents)} latent codes; "
                f"watching needs at least {2 * MIN_BATCH}"
            )
        self._kernel = GaussianKernel(self.reference.latents, self.width)
        self._sorted_scores = np.sort(self.reference.scores)
        # A split of the null leaves at least three quarters of the codes as its reference.
        self.largest_batch = len(self.reference.latents) // 4

    def watch(
        self,
        scores: np.ndarray,
        flagged: np.ndarray,
        latents: np.ndarray,
        reference_sums: np.ndarray | None = None,
    ) -> Verdict:
        """The batch's verdict; `reference_sums`: its codes' (see `reference_sums`), where they
        were computed as its images were scored."""
        if len(scores) < MIN_BATCH:
            raise AepipeError(
                f"a batch of {len(scores)} images; drift watching needs at least {MIN_BATCH}"
            )
        if len(latents) > self.largest_batch:
            raise AepipeError(
                f"a batch of {len(latents)} images; the detector's reference of "
                f"{len(self.reference.latents)} latent codes watches batches of at most "
                f"{self.largest_batch}"
            )
        self.batches, self.images = self.batches + 1, self.images + len(scores)
        count = int(np.sum(flagged))
        self.flagged += count
        discrepancy = self._kernel.mmd(latents, reference_sums)
        null = self.null(len(latents))
        ks_statistic, ks_p = kolmogorov_smirnov(scores, self._sorted_scores)
        p_values = {
            "flag_rate": binomial_tail(count, len(scores), self.reference.target),
            "scores": ks_p,
            "latents": float((1 + np.sum(null >= discrepancy)) / (1 + len(null))),
        }
        return Verdict(
            self.batches,
            len(scores),
            count,
            count / len(scores),
            wilson_interval(count, len(scores)),
            self.flagged / self.images,
            wilson_interval(self.flagged, self.images),
            ks_statistic,
            float(discrepancy),
            p_values,
            [test for test in TESTS if p_values[test] < self.alpha / len(TESTS)],
        )

    def reference_sums(self, latents: np.ndarray) -> np.ndarray:
        """Each code's kernel summed over the reference codes: most of a batch's latent test, and
        each image's alone, so that it can be computed where and as the image is scored."""
        return self._kernel.reference_sums(latents)

    def null(self, size: int) -> np.ndarray:
        """MMD² of NULL_DRAWS random splits of the reference codes: `size` of them against the rest,
        as a batch of the reference's own population would read. The rest stands in for the whole
        reference, a quarter smaller at most, which widens the null a little (conservative). A
        split, unlike a batch drawn from a fixed other half, carries no offset between two finite
        halves, which a narrow kernel would read as drift."""
        if size not in self.nulls:
            gram = self._kernel.gram()
            np.fill_diagonal(gram, 0)
            rows, total, count = gram.sum(1), gram.sum(), len(gram)
            rest = count - size
            rng = np.random.default_rng(self.seed)
            values = np.empty(NULL_DRAWS)
            for draw in range(NULL_DRAWS):
                drawn = rng.choice(count, size, replace=False)
                within, out = gram[np.ix_(drawn, drawn)].sum(), rows[drawn].sum()
                values[draw] = (
                    within / (size * (size - 1))
                    + (total - 2 * out + within) / (rest * (rest - 1))
                    - 2 * (out - within) / (size * rest)
                )
            self.nulls[size] = values
        return self.nulls[size]


def binomial_tail(count: int, n: int, rate: float) -> float:
    """P(at least `count` of `n` flagged) at `rate`, summed from its terms in logarithms (as
    scipy.special.bdtrc(count - 1, n, rate))."""
    if count <= 0:
        return 1.0
    if count > n:
        return 0.0
    first = (
        math.lgamma(n + 1)
        - math.lgamma(count + 1)
        - math.lgamma(n - count + 1)
        + count * math.log(rate)
        + (n - count) * math.log1p(-rate)
    )
    flagged = np.arange(count, n)
    steps = np.log((n - flagged) / (flagged + 1)) + math.log(rate / (1 - rate))
    terms = np.concatenate([[first], first + np.cumsum(steps)])
    largest = terms.max()
    return float(math.exp(largest) * np.exp(terms - largest).sum())


def kolmogorov_smirnov(sample: np.ndarray, reference_sorted: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov–Smirnov statistic of `sample` against a sorted reference (as
    scipy.stats.ks_2samp's), and its p-value by Kolmogorov's limiting distribution: a little above
    ks_2samp's exact one at a batch's sizes (conservative)."""
    sample, n, m = np.sort(sample), len(sample), len(reference_sorted)
    # The two empirical distributions differ most at a sample point: the sample's steps up there,
    # the reference's stays as it is until the next one.
    above = np.arange(1, n + 1) / n - np.searchsorted(reference_sorted, sample, "right") / m
    below = np.searchsorted(reference_sorted, sample, "left") / m - np.arange(n) / n
    statistic = float(max(above.max(), below.max()))
    return statistic, kolmogorov_survival(math.sqrt(n * m / (n + m)) * statistic)


SERIES_TERMS = np.arange(1, 12)  # either series of Kolmogorov's distribution, to double precision


def kolmogorov_survival(y: float) -> float:
    """P(K > y) for Kolmogorov's distribution (as scipy.special.kolmogorov): its alternating series,
    or, below 0.8 where that one converges slowly and rounds near 1, the complement of the
    distribution's own (Jacobi's theta) series."""
    if y <= 0:
        return 1.0
    if y < 0.8:
        odd = (2 * SERIES_TERMS - 1) ** 2
        return float(1 - math.sqrt(2 * math.pi) / y * np.exp(-odd * math.pi**2 / (8 * y * y)).sum())
    signs = (-1.0) ** (SERIES_TERMS - 1)
    return float(2 * (signs * np.exp(-2 * SERIES_TERMS**2 * y * y)).sum())


class GaussianKernel:
    """MMD² against a fixed set of reference points, under a Gaussian kernel whose bandwidth is
    `width` of their median distance (median_squared_distance). The bandwidth and the reference's
    own term are computed once; a sample's kernel rows, most of a watch's work, in float32."""

    def __init__(self, reference: np.ndarray, width: float = WIDTH):
        self._reference = reference.astype(np.float64)
        points = reference.astype(np.float32)
        self.bandwidth = width * float(np.sqrt(median_squared_distance(points))) or 1.0
        self._scale = -1 / (2 * self.bandwidth**2)
        self._against = self._right(points)
        within = self._rows(points, self._against)
        m = len(points)
        self.reference_term = (
            within.sum(dtype=np.float64) - np.trace(within, dtype=np.float64)
        ) / (m * (m - 1))

    def gram(self) -> np.ndarray:
        """The reference points' kernel matrix (float64)."""
        return np.exp(squared_distances(self._reference, self._reference) * self._scale)

    # One matrix product gives the squared distances x·x + p·p - 2 x·p times the scale, with no
    # pass over the rows but the exponential's: [x, x·x, 1] against [-2 scale p, scale, scale p·p].
    def _right(self, points: np.ndarray) -> np.ndarray:
        scale = np.float32(self._scale)
        columns = [-2 * scale * points, np.full((len(points), 1), scale, np.float32)]
        columns.append(scale * (points**2).sum(1, keepdims=True))
        return np.ascontiguousarray(np.concatenate(columns, 1).T)

    def _rows(self, sample: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The kernel between the sample and `right`'s points: a point's with itself may round a
        little above 1, which the MMD's own terms leave out with the diagonal as computed."""
        ones = np.ones((len(sample), 1), np.float32)
        rows = np.concatenate([sample, (sample**2).sum(1, keepdims=True), ones], 1) @ right
        return np.exp(rows, out=rows)

    def reference_sums(self, sample: np.ndarray) -> np.ndarray:
        """Each sample point's kernel summed over the reference points (float64): the MMD²'s
        between term, which each point brings alone."""
        rows = self._rows(np.asarray(sample, np.float32), self._against)
        return summed_rows(rows)

    def mmd(self, sample: np.ndarray, reference_sums: np.ndarray | None = None) -> float:
        """The unbiased MMD² of `sample` (at least two points) and the reference, from its points'
        `reference_sums` where they were computed already."""
        sample = np.asarray(sample, np.float32)
        if reference_sums is None:
            reference_sums = self.reference_sums(sample)
        n, m = len(sample), self._against.shape[1]
        within = self._rows(sample, self._right(sample))
        own = (summed_rows(within).sum() - np.trace(within, dtype=np.float64)) / (n * (n - 1))
        return float(own + self.reference_term - 2 * reference_sums.sum() / (n * m))


def summed_rows(rows: np.ndarray) -> np.ndarray:
    """Each float32 row's sum, by a matrix-vector product: three times as fast as numpy's sums, and
    float32's rounding leaves an MMD² within 1e-6, where its null spreads over 1e-3."""
    return (rows @ np.ones(rows.shape[1], np.float32)).astype(np.float64)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0.0)


def median_squared_distance(points: np.ndarray) -> float:
    """The median squared distance between two of the first BANDWIDTH_POINTS points, as np.median
    of the entries above the diagonal of their distances, without gathering them: below the
    diagonal each is there again, and the diagonal, set below every distance, sorts first."""
    points = points[:BANDWIDTH_POINTS]
    distances = squared_distances(points, points)
    np.fill_diagonal(distances, -1)
    middle = len(points) + (distances.size - len(points)) // 2
    low, high = np.partition(distances, (middle - 1, middle), axis=None)[middle - 1 : middle + 1]
    return (float(low) + float(high)) / 2


REFERENCE_CODES = 2048  # latent codes of calibration images a detector carries
# Images per watched batch by default: the batch `aepipe score` reads and scores at a time. At a 1 %
# target it holds 2.56 expected false alarms; its MMD null is fitted once, at export, and carried.
WATCH_BATCH = 256


def encode_reference(
    scores: np.ndarray, latents: np.ndarray, target: float, seed: int, **made_for: str
) -> str:
    """The reference a detector carries (its metadata's "reference", models/reference.json): every
    calibration score, the latent codes of up to REFERENCE_CODES calibration images drawn at random
    (`seed`), the false-alarm target, the MMD's null for a WATCH_BATCH (where the codes allow one),
    and `made_for` (the model's sha256); the arrays as little-endian bytes in base64."""
    rng = np.random.default_rng(seed)
    # As carried (float32): the null is fitted on the very codes a watch reads back.
    kept = latents[rng.permutation(len(latents))[:REFERENCE_CODES]].astype("<f4")
    nulls = {}
    if len(kept) // 4 >= WATCH_BATCH:  # codes enough to watch a default batch (Watch.largest_batch)
        null = Watch(Reference(np.inf, target, scores, kept)).null(WATCH_BATCH)
        nulls[str(WATCH_BATCH)] = encoded(null, "<f8")
    return json.dumps(
        {
            "target": target,
            "scores": encoded(scores, "<f8"),
            "latents": encoded(kept, "<f4"),
            "latent_dim": int(latents.shape[1]),
            "mmd_nulls": nulls,
            **made_for,
        }
    )


def decode_reference(text: str, threshold: float) -> tuple[Reference, dict[int, np.ndarray]]:
    """The Reference of `encode_reference`'s text, for a detector of this threshold, and the MMD
    nulls it carries by batch size."""
    saved = json.loads(text)
    latents = decoded(saved["latents"], "<f4").reshape(-1, saved["latent_dim"])
    # Not "nulls", which detectors exported by earlier versions carry: drawn from half of the codes
    # under a wider kernel, another statistic's null. Such a watch fits its own when it starts.
    carried = saved.get("mmd_nulls", {})
    nulls = {int(size): decoded(null, "<f8") for size, null in carried.items()}
    return Reference(threshold, saved["target"], decoded(saved["scores"], "<f8"), latents), nulls


def encoded(values: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.asarray(values, dtype).tobytes()).decode()


def decoded(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype)
