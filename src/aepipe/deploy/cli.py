"""`aepipe score` and `aepipe calibrate`: their arguments, turned into a call of
aepipe.deploy.scoring (docs/reference.md, "Score your own images", says what each option does)."""

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aepipe.anomaly.drift import WATCH_BATCH

# Only what scoring with an exported detector needs: torch is imported where the model is used.
from aepipe.atomic import growing_file
from aepipe.deploy.inputs import image_count, listed
from aepipe.deploy.scorers import Scorer, scorer_of_files
from aepipe.deploy.scoring import Cluster, Row, batch_size, calibrate_files, score_files
from aepipe.deploy.watching import WatchSettings, open_watch
from aepipe.errors import AepipeError

COLUMNS = ["source", "score", "flagged", "dead_frame", "error"]
SCORE_HELP = """Score images (PNG, JPEG, TIFF, BMP, WebP, .npy arrays; folders of them) with the
pipeline's torch files or an exported detector (--onnx); a CSV row each: source, score, flagged,
dead_frame, error. Exit status: 0 all scored, 1 some could not be (the error column says why), 2 a
mistake in the command, 3 drift declared with --fail-on-drift. Every option in full:
docs/reference.md, "Score your own images"."""
CALIBRATE_HELP = (
    "set the threshold on site from known-good images of the line (PATH...): a copy of the "
    "detector (--onnx) or a threshold file that flags --false-alarms of good parts, without "
    "retraining; every image must be readable"
)


def add_commands(commands) -> None:
    """`aepipe score` and `aepipe calibrate` on the `aepipe` command's subparsers."""
    scorer = scorer_arguments()
    score = commands.add_parser(
        "score",
        parents=[scorer],
        help="score images; flag those above the threshold",
        description=SCORE_HELP,
    )
    score.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    score.add_argument(
        "--maps", type=Path, metavar="DIR", help="write each image's anomaly map as a PNG into DIR"
    )
    score.add_argument(
        "--strict", action="store_true", help="all or nothing: stop at the first unscorable image"
    )
    add_watch_arguments(score)
    score.set_defaults(run=score_command)
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
        help="the new detector (.onnx, with --onnx) or threshold file (.json, for --threshold)",
    )
    calibrate.set_defaults(run=calibrate_command)


def scorer_arguments() -> argparse.ArgumentParser:
    """What both commands score with: the paths and the detector."""
    scorer = argparse.ArgumentParser(add_help=False)
    scorer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    scorer.add_argument("--model", type=Path, default=Path("models/model.pt"))
    scorer.add_argument(
        "--score",
        type=Path,
        default=Path("models/anomaly_score.json"),
        help="the anomaly score's fitted statistics (the score stage's)",
    )
    scorer.add_argument("--threshold", type=Path, default=Path("reports/threshold.json"))
    scorer.add_argument(
        "--onnx",
        type=Path,
        metavar="DETECTOR",
        help="score with this exported detector instead: onnxruntime, no torch",
    )
    scorer.add_argument("--invert", action="store_true", help="dark strokes on a light background")
    cluster = scorer.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS", help="score on this Dask scheduler")
    cluster.add_argument("--cluster", type=Path, metavar="FILE", help="or on aepipe grid's cluster")
    return scorer


def add_watch_arguments(score: argparse.ArgumentParser) -> None:
    watch = score.add_mutually_exclusive_group()
    watch.add_argument("--watch", action="store_true", default=None, help="refuse unwatched")
    watch.add_argument("--no-watch", dest="watch", action="store_false", help="do not watch")
    score.add_argument(
        "--watch-batch", type=int, metavar="N", help=f"images per watched batch ({WATCH_BATCH})"
    )
    score.add_argument(
        "--drift-alpha",
        type=float,
        default=0.01,
        metavar="RATE",
        help="undrifted batches declared drifted, at most (0.01)",
    )
    score.add_argument("--drift-log", type=Path, metavar="FILE", help="a CSV row per batch")
    score.add_argument("--fail-on-drift", action="store_true", help="exit 3 on drift")
    score.add_argument("--reference", type=Path, help="the torch path's drift reference")


def scorer_of(args: argparse.Namespace) -> Scorer:
    files = (
        {"onnx": args.onnx}
        if args.onnx
        else {"model": args.model, "score": args.score, "threshold": args.threshold}
    )
    return scorer_of_files(files)


def cluster_of(args: argparse.Namespace) -> Cluster | None:
    return Cluster(args.scheduler, args.cluster) if args.scheduler or args.cluster else None


def watch_settings(args: argparse.Namespace) -> WatchSettings | None:
    """None for --no-watch; any watch option asks for the watch, so that --fail-on-drift never
    passes unwatched."""
    if args.watch is False:
        return None
    log = args.drift_log or (args.out.with_name(args.out.name + ".drift.csv") if args.out else None)
    asked = (args.watch, args.reference, args.watch_batch, args.drift_log, args.fail_on_drift)
    return WatchSettings(any(asked), args.watch_batch, log, args.drift_alpha, args.reference)


def score_command(args: argparse.Namespace) -> None:
    if args.maps and args.maps.exists() and not args.maps.is_dir():
        raise AepipeError(
            f"--maps {args.maps}: not a folder; expected a folder to write the PNG maps into"
        )
    scorer = scorer_of(args)
    settings = watch_settings(args)
    watch = open_watch(scorer, settings, args.strict) if settings else None
    rows = score_files(
        args.paths,
        scorer,
        invert=args.invert,
        strict=args.strict,
        with_maps=bool(args.maps),
        watch=watch,
        cluster=cluster_of(args),
    )
    errors = write_rows(rows, args, image_count(listed(args.paths)), batch_size(scorer))
    if watch and (summary := watch.finish()):
        print(summary, file=sys.stderr)
    if failed := sum(error is not None for error in errors):
        print(
            f"{failed:,} of {len(errors):,} images could not be scored; the error column says why",
            file=sys.stderr,
        )
    if watch and watch.drifted and args.fail_on_drift:
        sys.exit(3)
    if failed:
        sys.exit(1)


def write_rows(
    rows: Iterator[Row], args: argparse.Namespace, total: int, batch: int
) -> list[str | None]:
    """The CSV (and --maps) as the rows come, flushed a batch at a time; each row's error."""
    from aepipe.figures.overlay import write_map

    errors = []
    with growing_file(args.out, held=args.strict) as file, progress(total) as bar:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(csv_row(row))
            if args.maps and row.map is not None:
                image = row.image
                write_map(
                    args.maps, row.number, row.source, image.pixels, image.size, row.map, row.mask
                )
            errors.append(row.error)
            bar.update()
            if (row.number + 1) % batch == 0:
                file.flush()
    return errors


def csv_row(row: Row) -> list[str]:
    if row.error:
        return [row.source, "", "", "", row.error]
    return [
        row.source,
        f"{row.score:.6g}",
        str(row.flagged).lower(),
        str(row.dead_frame).lower(),
        "",
    ]


@contextmanager
def progress(total: int) -> Iterator:
    """A progress bar on stderr, for a terminal only (nothing in a log or a pipe)."""
    from tqdm import tqdm

    with tqdm(total=total, unit="image", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        yield bar


def calibrate_command(args: argparse.Namespace) -> None:
    """Score the good images (every one readable), set the threshold for the target, write the new
    detector or threshold file, whose drift watch reads these images from now on."""
    calibration, referenced = calibrate_files(
        args.paths,
        scorer_of(args),
        args.false_alarms,
        args.out,
        invert=args.invert,
        cluster=cluster_of(args),
    )
    low, high = calibration["interval"]
    print(
        f"{args.out}: threshold {calibration['threshold']:.6g} from {calibration['images']:,} "
        f"good images, {calibration['false_alarms']} of them above it; false alarms on new good "
        f"parts of this line: {low:.1%}–{high:.1%} (95 %)"
        + ("; the drift watch's reference: these images" if referenced else "")
    )
