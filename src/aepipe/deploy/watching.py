"""`aepipe score`'s drift watch: the scored images regrouped into watch batches in the order they
were scored, each tested against the detector's reference (aepipe.anomaly.drift), a row of the
drift log each, and a line on stderr for each batch declared drifted."""

import csv
import sys
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from aepipe.anomaly.drift import MIN_BATCH, TESTS, WATCH_BATCH, Verdict, Watch, decode_reference
from aepipe.anomaly.verdicts import Scores
from aepipe.atomic import growing_file
from aepipe.deploy.scorers import Scorer, torch_path_reference
from aepipe.errors import AepipeError

LOG_COLUMNS = [
    "batch",
    "images",
    "flagged",
    "flag_rate",
    "flag_rate_low",
    "flag_rate_high",
    "running_rate",
    "running_low",
    "running_high",
    "ks_statistic",
    "mmd",
    *(f"p_{test}" for test in TESTS),
    "drift",
    "fired",
]
NO_REFERENCE = (
    "carries no reference to watch by; export it again with this aepipe (`dvc repro "
    "export`: the reference is the calibration images' scores and latent codes)"
)


@dataclass(frozen=True)
class WatchSettings:
    """How a run is watched (aepipe score's watch options). `required`: refuse to score unwatched
    (a detector that cannot be watched is refused, saying why); otherwise it is watched wherever
    it can be. `reference`: the torch path's, instead of the one it finds."""

    required: bool = False
    batch: int | None = None
    log: Path | None = None
    alpha: float = 0.01
    reference: Path | None = None


def open_watch(
    scorer: Scorer, settings: WatchSettings, strict: bool = False
) -> "StreamWatch | None":
    """The watch of a run scored by `scorer`; None where the detector cannot be watched (no
    reference, too few codes, the torch path's reference made for another model) and the watch
    is not `required`."""
    try:
        if "onnx" in scorer.files:
            source, reference = scorer.files["onnx"], scorer.reference
        else:
            files = scorer.files
            source, reference = torch_path_reference(
                files["threshold"], files["model"], settings.reference
            )
        if reference is None:
            raise AepipeError(f"--watch: {source} {NO_REFERENCE}")
        return StreamWatch(
            reference, scorer.threshold, settings.batch, settings.log, settings.alpha, strict
        )
    except AepipeError:
        if settings.required:
            raise
        return None


class StreamWatch:
    """Watches the scored batches handed to `add`, in order, in batches of `size` images."""

    def __init__(
        self,
        reference: str,
        threshold: float,
        size: int | None,
        log: Path | None,
        alpha: float,
        strict: bool = False,
    ):
        """`size`: the images of a watched batch; None: WATCH_BATCH, or the most a small reference
        watches."""
        # The watch's matrix products on one BLAS thread, from its start: the scoring workers have
        # the cores (BLAS's own threads beside them double the watch's cost, and spin a while after
        # the reference's products, taking a core from them).
        from threadpoolctl import threadpool_limits

        self._blas = threadpool_limits(limits=1, user_api="blas")
        try:
            carried, nulls = decode_reference(reference, threshold)
            self.watch = Watch(carried, alpha=alpha, nulls=nulls)
            self.size = size or min(WATCH_BATCH, self.watch.largest_batch)
            self._check_size()
        except BaseException:
            self._blas.restore_original_limits()
            raise
        self.drifted = []
        # scores, flags, codes, the codes' reference_sums
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        # As the scores' CSV: a row as each batch is watched; with --strict (all or nothing), held
        # until the run ends.
        self._log_file, self.rows = ExitStack(), None
        if log:
            self.file = self._log_file.enter_context(growing_file(log, held=strict))
            self.rows = csv.writer(self.file, lineterminator="\n")
            self.rows.writerow(LOG_COLUMNS)

    def with_reference_sums(self, scored: Scores | None) -> Scores | None:
        """`scored` with its latent codes' kernel sums over the reference: most of the watch's work,
        and each image's alone, done on the thread that scored it (on the main thread, between
        batches, it would hold up the next batch's scoring)."""
        if scored is None:
            return None
        return replace(scored, reference_sums=self.watch.reference_sums(scored.latents))

    def add(self, scored: Scores) -> None:
        sums = scored.reference_sums
        if sums is None:
            sums = self.watch.reference_sums(scored.latents)
        self.pending.append((scored.scores, scored.flagged, scored.latents, sums))
        while sum(len(part[0]) for part in self.pending) >= self.size:
            self._watch(self._take(self.size))

    def finish(self) -> str | None:
        """Close the log; one line that sums up (None when too few images were scored to watch a
        batch). The last images, fewer than a batch, are not watched: a batch of another size would
        need a null of its own."""
        left = sum(len(part[0]) for part in self.pending)
        self._blas.restore_original_limits()
        self._log_file.close()
        if not self.watch.batches:
            return None
        watched = f"drift watch: {self.watch.images:,} images in {self.watch.batches} batches" + (
            f" (the last {left}, fewer than a batch, not watched)" if left else ""
        )
        if not self.drifted:
            return f"{watched}: no drift declared"
        return f"{watched}: drift declared in {len(self.drifted)}, first in batch {self.drifted[0]}"

    def _check_size(self) -> None:
        if not MIN_BATCH <= self.size <= self.watch.largest_batch:
            raise AepipeError(
                f"--watch-batch {self.size}: expected {MIN_BATCH} to {self.watch.largest_batch} "
                f"images (the detector's reference of {len(self.watch.reference.latents)} latent "
                "codes watches batches of at most a quarter of them)"
            )

    def _take(self, count: int) -> tuple[np.ndarray, ...]:
        joined = [np.concatenate(column) for column in zip(*self.pending, strict=True)]
        self.pending = (
            [tuple(column[count:] for column in joined)] if len(joined[0]) > count else []
        )
        return tuple(column[:count] for column in joined)

    def _watch(self, batch: tuple[np.ndarray, ...]) -> None:
        verdict = self.watch.watch(*batch)
        if verdict.drift:
            self.drifted.append(verdict.batch)
            print(f"drift: {described(verdict)}", file=sys.stderr)
        if self.rows:
            self.rows.writerow(log_row(verdict))
            self.file.flush()


def described(verdict: Verdict) -> str:
    """Which tests fired on which batch, with their numbers."""
    numbers = {
        "flag_rate": f"{verdict.flagged} of {verdict.images} flagged",
        "scores": f"KS {verdict.ks_statistic:.3f}",
        "latents": f"MMD² {verdict.mmd:.4f}",
    }
    fired = ", ".join(
        f"{test} ({numbers[test]}, p {verdict.p_values[test]:.2g})" for test in verdict.fired
    )
    return f"batch {verdict.batch} ({verdict.images} images): {fired}"


def log_row(verdict: Verdict) -> list:
    return [
        verdict.batch,
        verdict.images,
        verdict.flagged,
        round(verdict.flag_rate, 6),
        *(
            round(value, 6)
            for value in (*verdict.interval, verdict.running_rate, *verdict.running_interval)
        ),
        round(verdict.ks_statistic, 6),
        round(verdict.mmd, 6),
        *(f"{verdict.p_values[test]:.3g}" for test in TESTS),
        str(verdict.drift).lower(),
        " ".join(verdict.fired),
    ]
