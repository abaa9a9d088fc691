"""The `aepipe` command: score your own images with a trained model, its anomaly score and
threshold.

    aepipe score PATH... [--model models/model.pt] [--score models/anomaly_score.json]
                         [--threshold reports/threshold.json] [--out FILE] [--maps DIR] [--invert]
                         [--strict]
    aepipe score PATH... --onnx models/detector.onnx [--out FILE] [--maps DIR] [--invert] [--strict]
    aepipe score PATH... [...] --scheduler ADDRESS | --cluster FILE

--onnx scores with the exported detector instead (the export stage's: the model, score and threshold
in one file), with onnxruntime and without torch: the same CSV, maps and refusals.

--scheduler ADDRESS or --cluster FILE (aepipe grid's cluster files; the grid extra): the images are
read here and scored on a Dask cluster's workers, by the scorer of the same files (their bytes sent
to the workers: no shared filesystem needed), the batches back in their order: the same CSV, maps
and drift watch (aepipe calibrate too: the same detector).

PATH: image files (PNG, JPEG, TIFF 8- or 16-bit, BMP, WebP; each as it displays, its EXIF
orientation applied), folders of them (not recursive), or .npy arrays of images of the model's shape
(channels × side × side: 1×28×28 for MNIST). Image files are converted to it: greyscale or colour as
the model takes, resized (Lanczos), a non-square one stretched (README: "Your own images"); for
MNIST's models light strokes on a dark background (--invert for dark ink on light paper). A .npy
array may hold uint8 pixels (0–255) or floats in [0, 1], shaped (side, side), (N, side, side) or (N,
1, side, side) for greyscale, (N, side, side, 3) or (N, 3, side, side) for colour.

Images are read, scored and written a batch at a time: memory does not grow with their number, and
the CSV grows as they are scored (--out FILE: into FILE.partial, renamed to FILE when the run ends;
an interrupted run leaves FILE as it was and FILE.partial with the rows of every batch done). Writes
CSV: source, score (the pipeline's anomaly.score: reconstruction MSE, or the combined score),
flagged (score > threshold, or a dead frame), dead_frame (blank, saturated or one flat colour:
flagged whatever the score), error (why an image could not be scored: unreadable, of another shape,
too small; its other columns empty). Exit status 0 when every image was scored, 1 when any could not
be, 2 for a mistake in the command (a PATH that does not exist, a model or detector that cannot be
used). --strict: all or nothing instead: the first image that cannot be scored stops the run (exit
2), and nothing is written. --maps DIR also writes two PNGs per image into DIR: the image beside its
anomaly map (|image - reconstruction| per pixel, in colour over the image), and the map alone at the
image's own size (`*_map.png`, 0–255 for an error of 0–1); with the map_max score, the map it scores
(anomaly.map, blurred) and the defect's mask, its pixels above the threshold (`*_mask.png`).

Drift: a detector that carries its reference (the export stage's, for whole images: --onnx's file,
or models/reference.json beside the model) is watched batch by batch as it scores, in batches of
--watch-batch images (default 256; aepipe.deploy.watching): the flag rate against the false-alarm
target, the scores against the calibration scores, the latent codes against the reference's
(aepipe.anomaly.drift), at most --drift-alpha (default 0.01) of the batches of an undrifted stream
declared drifted. A line on stderr names each drifted batch and the tests that fired;
--drift-log FILE (default: beside --out, OUT.drift.csv) holds a row per batch (`dvc plots show`
draws it). A detector that cannot be watched (no reference, too few codes, a reference of another
model) scores unwatched, unless a watch option asks for it (--watch, --watch-batch, --drift-log,
--fail-on-drift, --reference): then it is refused, saying why. --no-watch turns the watch off.
--fail-on-drift: exit status 3 when any batch was declared drifted (after every image was scored
and written).
"""

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from aepipe.anomaly.drift import WATCH_BATCH
from aepipe.anomaly.verdicts import Scores

# Only what scoring with an exported detector needs: torch is imported where the model is used.
from aepipe.atomic import atomic_path
from aepipe.deploy.inputs import (
    Input,
    batched,
    image_count,
    listed,
    read_ahead,
    read_inputs,
    worked_in_order,
)
from aepipe.deploy.scorers import (
    Scorer,
    check_made_for,
    read_score,
    score_readable,
    scorer_for,
)
from aepipe.deploy.serve import SCORING_BATCH  # images read, scored and written at a time
from aepipe.deploy.watching import NO_REFERENCE, StreamWatch
from aepipe.entrypoint import exit_on_error
from aepipe.errors import AepipeError
from aepipe.figures.overlay import write_maps
from aepipe.grid import cli as grid_cli
from aepipe.grid.cli import add_grid_arguments, grid_command, require_dask

COLUMNS = ["source", "score", "flagged", "dead_frame", "error"]
REFERENCE = "models/reference.json"  # the torch path's reference by default (the export stage's)


def main(argv: list[str] | None = None) -> None:
    exit_on_error(lambda: run(argv))


def run(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(
        prog="aepipe", description="Anomaly scores from a trained aepipe autoencoder."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scorer = scorer_arguments()
    score = commands.add_parser(
        "score",
        parents=[scorer],
        help="score images; flag those above the per-image threshold",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    score.add_argument(
        "--maps", type=Path, metavar="DIR", help="write each image's anomaly map as a PNG into DIR"
    )
    score.add_argument(
        "--strict",
        action="store_true",
        help="all or nothing: stop at the first image that cannot be scored, and write nothing",
    )
    add_watch_arguments(score)
    calibrate = commands.add_parser(
        "calibrate", parents=[scorer], help=CALIBRATE_HELP, description=CALIBRATE_HELP
    )
    calibrate.add_argument(
        "--false-alarms",
        type=float,
        required=True,
        metavar="SHARE",
        help="the share of good parts to flag, e.g. 0.01",
    )
    calibrate.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the new detector (.onnx, with --onnx) or threshold file (.json, for aepipe score "
        "--threshold)",
    )
    add_grid_arguments(
        commands.add_parser(
            "grid",
            help="a DVC experiment grid on a Dask cluster (the grid extra)",
            description=grid_cli.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    args = parser.parse_args(argv)
    run_command = {"score": score_command, "calibrate": calibrate_command, "grid": grid_command}
    run_command[args.command](args)


def scorer_arguments() -> argparse.ArgumentParser:
    """What both commands score with: the paths and the detector."""
    scorer = argparse.ArgumentParser(add_help=False)
    scorer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    scorer.add_argument("--model", type=Path, default=Path("models/model.pt"))
    scorer.add_argument(
        "--score",
        type=Path,
        default=Path("models/anomaly_score.json"),
        help="the anomaly score's fitted statistics, written by the score stage",
    )
    scorer.add_argument("--threshold", type=Path, default=Path("reports/threshold.json"))
    scorer.add_argument(
        "--onnx",
        type=Path,
        metavar="DETECTOR",
        help="score with this exported detector (models/detector.onnx) instead: onnxruntime, no "
        "torch",
    )
    scorer.add_argument(
        "--invert", action="store_true", help="invert greyscale (dark digits on a light background)"
    )
    cluster = scorer.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler", metavar="ADDRESS", help="score on this running Dask cluster (the grid extra)"
    )
    cluster.add_argument(
        "--cluster",
        type=Path,
        metavar="FILE",
        help="score on the cluster FILE describes (aepipe grid's)",
    )
    return scorer


def add_watch_arguments(score: argparse.ArgumentParser) -> None:
    """The drift watch's options (the module's doc)."""
    watch = score.add_mutually_exclusive_group()
    watch.add_argument(
        "--watch", action="store_true", default=None, help="watch for drift, or stop"
    )
    watch.add_argument(
        "--no-watch", dest="watch", action="store_false", help="do not watch for drift"
    )
    score.add_argument(
        "--watch-batch",
        type=int,
        metavar="N",
        help=f"images per watched batch (default {WATCH_BATCH}; fewer for a small reference)",
    )
    score.add_argument(
        "--drift-alpha",
        type=float,
        default=0.01,
        metavar="RATE",
        help="the share of undrifted batches declared drifted, at most (default 0.01)",
    )
    score.add_argument("--drift-log", type=Path, metavar="FILE", help="a CSV row per watched batch")
    score.add_argument("--fail-on-drift", action="store_true", help="exit 3 when drift is declared")
    score.add_argument(
        "--reference",
        type=Path,
        help="the torch path's reference (the export stage's), for the drift watch",
    )


CALIBRATE_HELP = (
    "set the threshold on site from known-good images of the line (PATH...): a copy of the "
    "detector (--onnx) or a threshold file that flags --false-alarms of good parts, without "
    "retraining; every image must be readable"
)


def score_command(args: argparse.Namespace) -> None:
    """Score the images a batch at a time, a CSV row each as it goes; exit 1 when any could not
    be."""
    if args.maps and args.maps.exists() and not args.maps.is_dir():
        raise AepipeError(
            f"--maps {args.maps}: not a folder; expected a folder to write the PNG maps into"
        )
    scorer = scorer_for(args)
    files = listed(args.paths)
    done = failed = 0
    stream = stream_watch(args, scorer)
    with csv_output(args.out, args.strict) as out, progress(image_count(files)) as bar:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        inputs = read_inputs(
            files, scorer.side, scorer.channels, args.invert, args.strict, tiled=bool(scorer.tiling)
        )
        batches = read_ahead(batched(inputs, batch_size(scorer)))
        for batch, scored in scored_in_order(batches, scorer, args, bool(args.maps), stream):
            failed += write_batch(writer, batch, scored, scorer, args.maps, done)
            out.flush()
            done += len(batch)
            bar.update(len(batch))
            if stream and scored:
                stream.add(scored)
    if stream and (summary := stream.finish()):
        print(summary, file=sys.stderr)
    if failed:
        print(
            f"{failed:,} of {done:,} images could not be scored; the error column says why",
            file=sys.stderr,
        )
    if stream and stream.drifted and args.fail_on_drift:
        sys.exit(3)
    if failed:
        sys.exit(1)


def scored_in_order(
    batches: Iterator[list[Input]],
    scorer: Scorer,
    args: argparse.Namespace,
    with_maps: bool,
    stream: StreamWatch | None = None,
) -> Iterator[tuple[list[Input], Scores | None]]:
    """(batch, the scores of its readable images) for each batch, in order: scored here on
    `scorer.workers` threads (each with its codes' kernel sums for `stream`'s watch), or on the
    Dask cluster of --scheduler or --cluster (aepipe.grid.scoring) by the scorer of the same
    files."""
    if not (args.scheduler or args.cluster):

        def work(batch: list[Input]) -> Scores | None:
            scored = score_readable(batch, scorer, with_maps)
            return stream.with_reference_sums(scored) if stream else scored

        return worked_in_order(batches, work, scorer.workers)
    require_dask("scoring on a Dask cluster (--scheduler, --cluster)")
    from aepipe.grid.scoring import ScorerFiles, cluster_scored

    named = (
        {"onnx": args.onnx}
        if args.onnx
        else {"model": args.model, "score": args.score, "threshold": args.threshold}
    )
    files = ScorerFiles.of(named)
    return cluster_scored(batches, files, with_maps, args.scheduler, args.cluster)


def write_batch(
    writer, batch: list[Input], scored: Scores | None, scorer: Scorer, maps: Path | None, first: int
) -> int:
    """The batch's rows (and maps, into `maps`), in its order, from the scores of its readable
    images; how many of its images failed."""
    good = [item for item in batch if item.error is None]
    if good:
        if maps:
            write_maps(
                maps,
                [first + place for place, item in enumerate(batch) if item.error is None],
                [item.source for item in good],
                [item.pixels for item in good],
                [item.size for item in good],
                scored.maps,
                scored.masks(scorer.threshold) if scorer.reads_map else None,
            )
        rows = iter(zip(scored.scores, scored.flagged, scored.dead, strict=True))
    for item in batch:
        if item.error:
            writer.writerow([item.source, "", "", "", item.error])
        else:
            score, flag, dead = next(rows)
            writer.writerow(
                [item.source, f"{score:.6g}", str(bool(flag)).lower(), str(bool(dead)).lower(), ""]
            )
    return len(batch) - len(good)


def stream_watch(args: argparse.Namespace, scorer: Scorer) -> StreamWatch | None:
    """The drift watch of this run: wherever the detector carries a reference that can watch,
    unless --no-watch; --watch refuses one that cannot, saying why."""
    if args.watch is False:
        return None
    try:
        reference = scorer.reference if args.onnx else torch_path_reference(args)
        if reference is None:
            raise AepipeError(f"--watch: {args.onnx or args.reference or REFERENCE} {NO_REFERENCE}")
        log = args.drift_log or (
            args.out.with_name(args.out.name + ".drift.csv") if args.out else None
        )
        return StreamWatch(
            reference, scorer.threshold, args.watch_batch, log, args.drift_alpha, args.strict
        )
    except AepipeError:
        # Watching by default: a detector that cannot be watched (no reference, too few codes, the
        # torch path's reference made for another model) still scores, unwatched; asked for by any
        # of the watch's options, the refusal stands (--fail-on-drift must not pass unwatched).
        asked = (args.watch, args.reference, args.watch_batch, args.drift_log, args.fail_on_drift)
        if any(asked):
            raise
        return None


def torch_path_reference(args: argparse.Namespace) -> str | None:
    """The torch path's reference: --reference; else the one a threshold file of `aepipe calibrate`
    carries; else the export stage's models/reference.json (None where it wrote none). Checked
    against the model it was made for."""
    carried = json.loads(args.threshold.read_text()).get("reference")
    path = args.reference or (args.threshold if carried else Path(REFERENCE))
    if not path.is_file():
        return None
    saved = carried if path == args.threshold else json.loads(path.read_text())
    if "none" in saved:
        return None
    check_made_for(
        path,
        "model",
        saved["model_sha256"],
        args.model,
        "rerun `dvc repro export`, or pass the matching --reference",
    )
    return json.dumps(saved)


@contextmanager
def csv_output(out: Path | None, strict: bool) -> Iterator[TextIO]:
    """Where the rows go as they are written (the module's doc: FILE.partial, renamed when done);
    with `strict`, nowhere until every image is scored."""
    if strict:
        table = io.StringIO()
        yield table
        if out:
            with atomic_path(out) as tmp:
                tmp.write_text(table.getvalue())
        else:
            sys.stdout.write(table.getvalue())
    elif out is None:
        yield sys.stdout
    else:
        partial = out.with_name(out.name + ".partial")
        out.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", newline="") as file:
            yield file
        os.replace(partial, out)


def batch_size(scorer: Scorer) -> int:
    """Images read and scored at a time: a scan (a model of tiles) holds many tiles, and is scored
    alone."""
    return SCORING_BATCH if scorer.tiling is None else 1


@contextmanager
def progress(total: int) -> Iterator:
    """A progress bar on stderr, for a terminal only (nothing in a log or a pipe)."""
    from tqdm import tqdm

    with tqdm(total=total, unit="image", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        yield bar


def calibrate_command(args: argparse.Namespace) -> None:
    """Score the good images (every one readable), set the threshold for the target, write the new
    detector or threshold file, whose drift watch reads these images from now on."""
    from aepipe.deploy.site_calibration import (
        site_reference,
        site_threshold,
        write_detector,
        write_threshold_file,
    )

    scorer = scorer_for(args)
    sources, good, digest = score_good_images(args, scorer)
    calibration = site_threshold(
        good.scores, good.dead, sources, args.false_alarms, digest.hexdigest()
    )
    reference = site_reference(good.scores, good.latents, args.false_alarms, scorer.model_sha256)
    if args.onnx:
        write_detector(args.onnx, calibration, args.out, reference)
    else:
        method = read_score(args.score, args.model).method
        write_threshold_file(
            args.threshold, args.model, args.score, method, calibration, args.out, reference
        )
    low, high = calibration["interval"]
    print(
        f"{args.out}: threshold {calibration['threshold']:.6g} from {calibration['images']:,} "
        f"good images, {calibration['false_alarms']} of them above it; false alarms on new good "
        f"parts of this line: {low:.1%}–{high:.1%} (95 %)"
        + ("; the drift watch's reference: these images" if reference else "")
    )


def score_good_images(args: argparse.Namespace, scorer: Scorer) -> tuple:
    """The good images' sources, their Scores (latent codes where the detector gives them), and
    the sha256 of their pixels."""
    from aepipe.deploy.site_calibration import add_images

    sources, parts, digest = [], [], hashlib.sha256()
    inputs = read_inputs(
        listed(args.paths),
        scorer.side,
        scorer.channels,
        args.invert,
        strict=True,
        tiled=bool(scorer.tiling),
    )
    batches = read_ahead(batched(inputs, batch_size(scorer)))
    for batch, scored in scored_in_order(batches, scorer, args, with_maps=False):
        sources += [item.source for item in batch]
        parts.append(scored)
        for item in batch:
            add_images(digest, item.pixels[None])
    return sources, Scores.joined(parts), digest
