"""Score files, or images already read, with a scorer (aepipe.deploy.scorers): the typed API under
`aepipe score` and `aepipe calibrate`, and what a service calls. Images are read, scored and handed
back a batch at a time, in their order: memory does not grow with their number. An image that
cannot be scored comes back as a row holding its error (unless `strict`, which refuses it)."""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aepipe.anomaly.verdicts import Scores
from aepipe.deploy.inputs import Input, batched, listed, read_ahead, read_images, worked_in_order
from aepipe.deploy.onnx_detector import SCORING_BATCH
from aepipe.deploy.scorers import Scorer, score_readable
from aepipe.deploy.watching import StreamWatch
from aepipe.errors import require_dask


@dataclass(frozen=True)
class Cluster:
    """A Dask cluster to score on instead of this machine's threads: a running scheduler's address,
    or a cluster file (aepipe grid's, docs/grid.md). The grid extra."""

    scheduler: str | None = None
    file: Path | None = None


@dataclass(frozen=True)
class Row:
    """An image scored, numbered by its place among the images read; `error` says why one could
    not be (its score, flags and map then None)."""

    number: int
    image: Input
    score: float | None = None
    flagged: bool | None = None
    dead_frame: bool | None = None
    map: np.ndarray | None = None  # with_maps: the anomaly map (of a scan: stitched)
    mask: np.ndarray | None = None  # with_maps, a map_max score: the defect's pixels

    @property
    def source(self) -> str:
        return self.image.source

    @property
    def error(self) -> str | None:
        return self.image.error


def score_files(
    paths: list[Path],
    scorer: Scorer,
    *,
    invert: bool = False,
    strict: bool = False,
    with_maps: bool = False,
    watch: StreamWatch | None = None,
    cluster: Cluster | None = None,
) -> Iterator[Row]:
    """A row per image of `paths` (files, folders of them, .npy arrays; aepipe.deploy.inputs), in
    order; each batch handed to `watch` once its rows are taken."""
    images = read_images(
        listed(paths), scorer.side, scorer.channels, invert, strict, tiled=bool(scorer.tiling)
    )
    return score_inputs(images, scorer, with_maps=with_maps, watch=watch, cluster=cluster)


def score_inputs(
    images: Iterable[Input],
    scorer: Scorer,
    *,
    with_maps: bool = False,
    watch: StreamWatch | None = None,
    cluster: Cluster | None = None,
) -> Iterator[Row]:
    """A row per image read, in order (`score_files`)."""
    done = 0
    batches = read_ahead(batched(images, batch_size(scorer)))
    for batch, scored in scored_in_order(batches, scorer, with_maps, watch, cluster):
        yield from rows_of(batch, scored, scorer, done)
        done += len(batch)
        if watch and scored:
            watch.add(scored)


def batch_size(scorer: Scorer) -> int:
    """Images read and scored at a time: a scan (a model of tiles) holds many tiles, and is scored
    alone."""
    return SCORING_BATCH if scorer.tiling is None else 1


def scored_in_order(
    batches: Iterator[list[Input]],
    scorer: Scorer,
    with_maps: bool,
    watch: StreamWatch | None = None,
    cluster: Cluster | None = None,
) -> Iterator[tuple[list[Input], Scores | None]]:
    """(batch, the scores of its readable images) for each batch, in order: scored here on
    `scorer.workers` threads (each with its codes' kernel sums for the watch), or on the `cluster`
    by the scorer of the same files (aepipe.deploy.cluster_scoring)."""
    if cluster is None:

        def work(batch: list[Input]) -> Scores | None:
            scored = score_readable(batch, scorer, with_maps)
            return watch.with_reference_sums(scored) if watch else scored

        return worked_in_order(batches, work, scorer.workers)
    require_dask("scoring on a Dask cluster (--scheduler, --cluster)")
    from aepipe.deploy.cluster_scoring import cluster_scored

    return cluster_scored(batches, scorer, with_maps, cluster.scheduler, cluster.file)


def rows_of(batch: list[Input], scored: Scores | None, scorer: Scorer, first: int) -> list[Row]:
    """The batch's rows, in its order, from the scores of its readable images."""
    maps = scored.maps if scored else None
    masks = scored.masks(scorer.threshold) if maps is not None and scorer.reads_map else None
    readable = iter(range(len(batch)))
    rows = []
    for number, image in enumerate(batch, first):
        if image.error:
            rows.append(Row(number, image))
            continue
        at = next(readable)
        rows.append(
            Row(
                number,
                image,
                float(scored.scores[at]),
                bool(scored.flagged[at]),
                bool(scored.dead[at]),
                None if maps is None else maps[at],
                None if masks is None else masks[at],
            )
        )
    return rows


def score_good_images(
    paths: list[Path], scorer: Scorer, *, invert: bool = False, cluster: Cluster | None = None
) -> tuple[list[str], Scores, str]:
    """Known-good images (every one readable: `strict`), scored: their sources, their Scores
    (latent codes where the detector gives them), and the sha256 of their pixels
    (aepipe.deploy.site_calibration.add_images)."""
    from aepipe.deploy.site_calibration import add_images

    sources, parts, digest = [], [], hashlib.sha256()
    images = read_images(
        listed(paths), scorer.side, scorer.channels, invert, strict=True, tiled=bool(scorer.tiling)
    )
    batches = read_ahead(batched(images, batch_size(scorer)))
    for batch, scored in scored_in_order(batches, scorer, False, cluster=cluster):
        sources += [image.source for image in batch]
        parts.append(scored)
        for image in batch:
            add_images(digest, image.pixels[None])
    return sources, Scores.joined(parts), digest.hexdigest()


def calibrate_files(
    paths: list[Path],
    scorer: Scorer,
    false_alarms: float,
    out: Path,
    *,
    invert: bool = False,
    cluster: Cluster | None = None,
) -> tuple[dict, bool]:
    """The threshold set on site from known-good images, for a share of false alarms
    (aepipe.deploy.site_calibration), written to `out`: a copy of the detector, or a threshold
    file. The calibration, and whether the images became the drift watch's reference."""
    from aepipe.deploy.site_calibration import site_reference, site_threshold, write_calibrated

    sources, good, images_sha256 = score_good_images(paths, scorer, invert=invert, cluster=cluster)
    calibration = site_threshold(good.scores, good.dead, sources, false_alarms, images_sha256)
    reference = site_reference(good.scores, good.latents, false_alarms, scorer.model_sha256)
    write_calibrated(scorer, calibration, out, reference)
    return calibration, reference is not None
