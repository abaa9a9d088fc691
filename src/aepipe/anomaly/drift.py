"""Whether a detector's promise still holds on the line, batch by batch: the tests a watched batch
of scored images goes through, against the reference the detector carries from its calibration.

- The promise: the batch's flag rate against the false-alarm target, one-sided binomial (a rate
  above the target is what a line notices), with its Clopper–Pearson interval and the stream's
  running rate.
- The scores: two-sample Kolmogorov–Smirnov of the batch's scores against the calibration scores.
- The images: the maximum mean discrepancy (MMD², Gaussian kernel of the median distance) of the
  batch's latent codes against half of the reference codes, read against a null fitted once per
  batch size from the other half: a shift the scores do not show yet.

A stream tests many times. Each batch's three tests share its false-alarm budget `alpha`
(Bonferroni: alpha / 3 each), so at most `alpha` of the batches of a stream that has not drifted
are declared drifted, whatever its length; over a horizon of H batches, at most alpha·H expected
false alarms (alpha / H bounds the chance of any). NumPy and SciPy, no torch.
"""

import base64
import json
from dataclasses import dataclass, field

import numpy as np

from aepipe.anomaly.calibration import binomial_interval
from aepipe.errors import AepipeError

TESTS = ("flag_rate", "scores", "latents")
MIN_BATCH = 32  # images: below it neither KS nor the MMD tells a shift from chance
# Batches drawn from the reference half for the MMD's null, per batch size (about 3 s on 2 cores,
# once): p-values down to 1/2001, so that alpha / 3 down to 0.0015 can fire.
NULL_DRAWS = 2000


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
    interval: tuple[float, float]  # the flag rate's 95 % Clopper–Pearson interval
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
    # The MMD's nulls by batch size: watches of one reference and seed may share them.
    nulls: dict[int, np.ndarray] = field(default_factory=dict)

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
        # Two halves drawn at random (`seed`): codes kept in any order (a file's, a day's) must not
        # put one population against the other in the null.
        order = np.random.default_rng(self.seed).permutation(len(self.reference.latents))
        half = len(order) // 2
        self._against = self.reference.latents[order[:half]]
        self._null_pool = self.reference.latents[order[half:]]
        self._kernel = GaussianKernel(self._against)
        self._sorted_scores = np.sort(self.reference.scores)
        # The null draws batches from the other half with replacement: at most half of it, so that
        # few codes are drawn twice.
        self.largest_batch = len(self._null_pool) // 2

    def watch(self, scores: np.ndarray, flagged: np.ndarray, latents: np.ndarray) -> Verdict:
        # SciPy's special functions only: scipy.stats takes 0.6–0.9 s to import here, 0.3 s these.
        from scipy.special import bdtrc

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
        discrepancy = self._kernel.mmd(latents)
        null = self.null(len(latents))
        ks_statistic, ks_p = kolmogorov_smirnov(scores, self._sorted_scores)
        p_values = {
            # P(at least `count` flagged) at the target rate
            "flag_rate": 1.0
            if count == 0
            else float(bdtrc(count - 1, len(scores), self.reference.target)),
            "scores": ks_p,
            "latents": float((1 + np.sum(null >= discrepancy)) / (1 + len(null))),
        }
        return Verdict(
            self.batches,
            len(scores),
            count,
            count / len(scores),
            binomial_interval(count, len(scores)),
            self.flagged / self.images,
            binomial_interval(self.flagged, self.images),
            ks_statistic,
            float(discrepancy),
            p_values,
            [test for test in TESTS if p_values[test] < self.alpha / len(TESTS)],
        )

    def null(self, size: int) -> np.ndarray:
        """MMD² of NULL_DRAWS batches of `size` codes drawn from the reference's other half, with
        replacement (a batch drawn without it would vary less than a line's fresh one: the
        finite-pool effect made false alarms), the pairs of one code with itself left out."""
        if size not in self.nulls:
            rng = np.random.default_rng(self.seed)
            draws = (rng.integers(0, len(self._null_pool), size) for _ in range(NULL_DRAWS))
            self.nulls[size] = np.array(
                [self._kernel.mmd(self._null_pool[drawn], drawn) for drawn in draws]
            )
        return self.nulls[size]


def kolmogorov_smirnov(sample: np.ndarray, reference_sorted: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov–Smirnov statistic of `sample` against a sorted reference (as
    scipy.stats.ks_2samp's), and its p-value by Kolmogorov's limiting distribution: a little above
    ks_2samp's exact one at a batch's sizes (conservative), and needing scipy.special alone."""
    from scipy.special import kolmogorov

    sample = np.sort(sample)
    both = np.concatenate([sample, reference_sorted])
    below_sample = np.searchsorted(sample, both, "right") / len(sample)
    below_reference = np.searchsorted(reference_sorted, both, "right") / len(reference_sorted)
    statistic = float(np.max(np.abs(below_sample - below_reference)))
    effective = len(sample) * len(reference_sorted) / (len(sample) + len(reference_sorted))
    return statistic, float(kolmogorov(np.sqrt(effective) * statistic))


class GaussianKernel:
    """MMD² against a fixed set of reference points, under a Gaussian kernel whose bandwidth is
    their median distance; the bandwidth and the reference's own term are computed once (float64),
    a sample's kernel rows in float32, in place: they are most of a watch's work, and a quarter of
    its time so."""

    def __init__(self, reference: np.ndarray):
        reference = reference.astype(np.float64)
        distances = squared_distances(reference, reference)
        self.bandwidth = (
            float(np.sqrt(np.median(distances[np.triu_indices(len(reference), 1)]))) or 1.0
        )
        self._scale = np.float32(-1 / (2 * self.bandwidth**2))
        within = np.exp(distances * float(self._scale))
        m = len(reference)
        self.reference_term = (within.sum() - np.trace(within)) / (m * (m - 1))
        self._points = reference.astype(np.float32)
        self._norms = (self._points**2).sum(1)

    def _kernel(self, sample: np.ndarray, norms: np.ndarray, points, points_norms) -> np.ndarray:
        rows = sample @ points.T
        rows *= -2
        rows += norms[:, None]
        rows += points_norms[None]
        np.maximum(rows, 0, out=rows)
        rows *= self._scale
        return np.exp(rows, out=rows)

    def mmd(self, sample: np.ndarray, identities: np.ndarray | None = None) -> float:
        """The unbiased MMD² of `sample` (at least two points) and the reference; `identities`:
        which drawn points are one and the same, their pairs left out of the sample's own term."""
        sample = sample.astype(np.float32)
        norms = (sample**2).sum(1)
        within = self._kernel(sample, norms, sample, norms)
        if identities is None:  # every point distinct: only the diagonal is left out
            left_out, pairs = np.trace(within, dtype=np.float64), len(sample) * (len(sample) - 1)
        else:
            same = identities[:, None] == identities[None]
            left_out, pairs = within[same].sum(dtype=np.float64), same.size - np.sum(same)
        own = (within.sum(dtype=np.float64) - left_out) / pairs
        between = self._kernel(sample, norms, self._points, self._norms).mean(dtype=np.float64)
        return float(own + self.reference_term - 2 * between)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0.0)


REFERENCE_CODES = 2048  # latent codes of calibration images a detector carries (half for the null)
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
            "nulls": nulls,
            **made_for,
        }
    )


def decode_reference(text: str, threshold: float) -> tuple[Reference, dict[int, np.ndarray]]:
    """The Reference of `encode_reference`'s text, for a detector of this threshold, and the MMD
    nulls it carries by batch size."""
    saved = json.loads(text)
    latents = decoded(saved["latents"], "<f4").reshape(-1, saved["latent_dim"])
    nulls = {int(size): decoded(null, "<f8") for size, null in saved.get("nulls", {}).items()}
    return Reference(threshold, saved["target"], decoded(saved["scores"], "<f8"), latents), nulls


def encoded(values: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.asarray(values, dtype).tobytes()).decode()


def decoded(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype)
