"""The drift watch (aepipe.anomaly.drift, `aepipe score`), measured on streams of good parts: how
often it cries drift where there is none, how soon it sees drift that is there, and what watching
costs.

    python bench/drift.py [--seeds 30] [--alphas 0.01,0.03] [--fashion [PROJECT]]  # after a
                                                   # default `dvc repro`: its detector

Streams are made of the normal validation images the score stage marked for testing (held out from
the calibration that made the detector's reference), each stream a random order of them (one seed
each) cut into batches of the watch's default 256; every batch is watched as `aepipe score --onnx`
watches it (the detector's carried reference and null), at each false-alarm budget per batch of
`--alphas` (`aepipe score`'s default, 0.01; and the peer's measured rate, to compare at the same):

- no drift: the held-out images as they are, `--seeds` streams per dataset; and, since those
  streams all read one reference, the pipeline's normal validation images split into random halves
  30 times, one half a reference of its own and the other the line (halves_no_drift);
- graded synthetic drift: brightness (grey levels added), contrast (pulled toward mid-grey),
  Gaussian blur and Gaussian noise, each at four strengths, five streams each; the detection delay
  is the images scored up to the end of the first batch declared drifted;
- a slow drift: the light brightening by half a grey level more in every batch (the batch first
  declared drifted, k, saw (k - 1) / 2 grey levels).

`--fashion` does the same for Fashion-MNIST, whose detector a pipeline run in a fresh clone makes
first (`dvc exp run -S data.dataset=fashion-mnist export`, about 4 minutes; its files from
$AEPIPE_FASHION_MNIST_MIRROR), kept for `--fashion PROJECT` next time. `--textures` adds the real
drift of the previous round: a texture's detector (the pipeline's inspection defaults at 64 px, in a
fresh clone: about 7 minutes each) watching its set's good test patches, which come from other
blocks of the photograph than its calibration patches (bench/inspection_sets.py; needs the bench
extra), and no drift on textures: each detector's calibration patches split into random halves,
one its reference and the other the line (`--textures-only`: this alone). Then `aepipe score
--onnx` over 120,000 held-out MNIST images, with and without watching, five rounds interleaved:
the images per second of each. Results: bench/results/drift.json
(drift-textures.json); the streams, for the Alibi Detect peer (bench/peer_alibi_drift.py), in
--streams (default: a temporary file, printed).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from aepipe.anomaly.calibration import binomial_interval
from aepipe.anomaly.detection import DEAD_FRAME
from aepipe.anomaly.drift import (
    REFERENCE_CODES,
    TESTS,
    WATCH_BATCH,
    Reference,
    Watch,
    decode_reference,
)
from aepipe.anomaly.verdicts import flag_rule
from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.deploy.onnx_detector import OnnxDetector
from one_class import clone_at, dvc
from provenance import REPO, RESULTS, machine

ALPHA = 0.01  # `aepipe score`'s --drift-alpha default
DRIFT_SEEDS = 5
# Each kind's strengths, from hardly visible to plain: grey levels added; the share of contrast
# kept; the blur's sigma in pixels; the noise's std, pixels in [0, 1].
DRIFTS = {
    "brightness": (2, 5, 10, 20),
    "contrast": (0.95, 0.9, 0.8, 0.6),
    "blur": (0.3, 0.5, 0.75, 1.0),
    "noise": (0.01, 0.02, 0.05, 0.1),
}
SLOW_STEP = 0.5  # grey levels more in every batch
SHORT_STREAM = 2048  # images: a short stream's, 8 batches
LINE_IMAGES = 120_000  # scored with and without watching, for the cost


@dataclass
class Source:
    """A dataset's detector and its held-out normal images, (N, C, H, W) floats in [0, 1]."""

    name: str
    project: Path
    detector: OnnxDetector
    images: np.ndarray
    nulls: dict = field(default_factory=dict)  # the MMD's, fitted once for every watch

    def watch(self, alpha: float) -> Watch:
        reference, carried = decode_reference(self.detector.reference, self.detector.threshold)
        if not self.nulls:
            self.nulls.update(carried)
        return Watch(reference, alpha=alpha, nulls=self.nulls)

    def scored(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores, flagged, _, _, latents = self.detector.run(images)
        return scores, flagged, latents


def held_out(project: Path, name: str) -> Source:
    roles = pd.read_csv(project / "data" / "scores" / "val_images.csv")
    test = (roles["role"] == "test").to_numpy() & roles["normal"].to_numpy()
    images = load_split(project / "data" / "raw", "val").images[test]
    return Source(
        name,
        project,
        OnnxDetector(project / "models" / "detector.onnx"),
        images[:, None].astype(np.float32) / 255,
    )


def drifted(images: np.ndarray, kind: str, strength: float, seed: int) -> np.ndarray:
    if kind == "brightness":
        changed = images + strength / 255
    elif kind == "contrast":
        changed = 0.5 + (images - 0.5) * strength
    elif kind == "blur":
        changed = gaussian_filter(images, (0, 0, strength, strength))
    else:
        changed = images + np.random.default_rng(seed).normal(0, strength, images.shape)
    return np.clip(changed, 0, 1).astype(np.float32)


def batches_of(scored: tuple, order: np.ndarray) -> list[tuple]:
    """A stream's batches in this order: every whole batch of WATCH_BATCH images."""
    return [
        tuple(part[order[k * WATCH_BATCH : (k + 1) * WATCH_BATCH]] for part in scored)
        for k in range(len(order) // WATCH_BATCH)
    ]


def streams(source: Source, seeds: int) -> dict[str, list[tuple]]:
    """Every stream of the dataset, by "dataset/kind/strength/seed": its batches (scores, flags,
    latent codes) in order."""
    made, count = {}, len(source.images)
    scored = source.scored(source.images)
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(count)
        made[f"{source.name}/none/0/{seed}"] = batches_of(scored, order)
    for kind, strengths in DRIFTS.items():
        for strength in strengths:
            for seed in range(DRIFT_SEEDS):
                changed = source.scored(drifted(source.images, kind, strength, seed))
                order = np.random.default_rng(100 + seed).permutation(count)
                made[f"{source.name}/{kind}/{strength:g}/{seed}"] = batches_of(changed, order)
    whole = count // WATCH_BATCH
    for seed in range(DRIFT_SEEDS):
        order = np.random.default_rng(200 + seed).permutation(count)[: whole * WATCH_BATCH]
        made[f"{source.name}/slow/{SLOW_STEP:g}/{seed}"] = [
            source.scored(drifted(source.images[chosen], "brightness", SLOW_STEP * k, seed))
            for k, chosen in enumerate(order.reshape(whole, WATCH_BATCH))
        ]
    return made


def verdicts(source: Source, batches: list[tuple], alpha: float) -> list:
    """The stream's Verdicts, batch by batch."""
    watch = source.watch(alpha)
    return [watch.watch(*batch) for batch in batches]


def no_drift(source: Source, made: dict, alpha: float) -> dict:
    """The undrifted streams' batches declared drifted, by test; and how many streams were declared
    drifted within their first SHORT_STREAM images."""
    alarms = batches = loud_starts = 0
    fired = dict.fromkeys(TESTS, 0)
    for key, parts in made.items():
        if key.startswith(f"{source.name}/none/"):
            watched = verdicts(source, parts, alpha)
            batches, alarms = batches + len(watched), alarms + sum(v.drift for v in watched)
            loud_starts += any(v.drift for v in watched[: SHORT_STREAM // WATCH_BATCH])
            for test in (test for verdict in watched for test in verdict.fired):
                fired[test] += 1
    low, high = binomial_interval(alarms, batches)
    print(f"{source.name}, alpha {alpha}: {alarms} of {batches} undrifted batches declared {fired}")
    return {
        "batches": batches,
        "alarms": alarms,
        "rate": alarms / batches,
        "interval": [low, high],
        "by_test": fired,
        f"streams_declared_within_{SHORT_STREAM}": loud_starts,
    }


def delays(source: Source, made: dict, alpha: float) -> list[dict]:
    """Per drift kind and strength: its flag rate, in how many streams it was declared, the images
    scored up to the end of the first batch declared drifted, and the share of its batches
    declared (each batch is tested alone)."""
    rows = []
    for kind, strengths in [*DRIFTS.items(), ("slow", (SLOW_STEP,))]:
        for strength in strengths:
            keys = [f"{source.name}/{kind}/{strength:g}/{seed}" for seed in range(DRIFT_SEEDS)]
            watched = [verdicts(source, made[key], alpha) for key in keys]
            firsts = [next((v for v in stream if v.drift), None) for stream in watched]
            found = [first.batch * WATCH_BATCH for first in firsts if first]
            flags = np.concatenate([batch[1] for key in keys for batch in made[key]])
            rows.append(
                {
                    "kind": kind,
                    "strength": strength,
                    "flag_rate": float(flags.mean()),
                    "declared_streams": len(found),
                    "streams": DRIFT_SEEDS,
                    "delays_images": [
                        first.batch * WATCH_BATCH if first else None for first in firsts
                    ],
                    "median_delay_images": float(np.median(found)) if found else None,
                    "batches_declared": float(np.mean([v.drift for s in watched for v in s])),
                    "first_tests": [first.fired if first else [] for first in firsts],
                }
            )
            print(
                f"{source.name}, alpha {alpha}, {kind} {strength:g}: flag rate "
                f"{rows[-1]['flag_rate']:.2%}, delays {rows[-1]['delays_images']}"
            )
    return rows


def fashion_project(given: str) -> Path:
    """`given`, or ("new") a fresh clone of HEAD that has run the pipeline up to its export on
    Fashion-MNIST, kept for the next run (`--fashion PATH`)."""
    if given != "new":
        return Path(given)
    clone, _ = clone_at("HEAD", "drift-fashion-")
    dvc("exp", "run", "-S", "data.dataset=fashion-mnist", "export", cwd=clone)
    print(f"the Fashion-MNIST project, for --fashion next time: {clone}")
    return clone


# The previous round's real drift (docs/results.md, the seeds' spread): the threshold set on a
# texture's calibration blocks flagged 11.0 % (brick, seed 2) and 4.8 % (grass) of its test blocks'
# good patches for a 1 % target; brick at seed 1 held (0.0 %).
TEXTURE_RUNS = (("brick", 1), ("brick", 2), ("grass", 42))
TEXTURE_ORDERS = 5  # random orders of each set's 500 good test patches, each a stream
KEPT = ("scores/val_images.csv", "latents.npz")  # a pipeline's files of its images' scores, codes
SPLITS = 30  # random halves of a detector's normal images, each a reference and a line


def texture_detectors(workdir: Path) -> dict[str, Path]:
    """Per texture run, the detector the pipeline exports (the inspection defaults at 64 px: the
    segmenter) in a fresh clone; the sets under workdir/sets."""
    from inspection import commit_folder
    from inspection_sets import write_sets

    write_sets(workdir / "sets", 64)
    clone, _ = clone_at("HEAD", "drift-textures-")
    found, committed = {}, None
    for name, seed in TEXTURE_RUNS:
        if name != committed:
            commit_folder(clone, workdir / "sets" / name, "data/images", f"inspection set {name}")
            committed = name
        settings = ["data.dataset=folder", "data.side=64", "data.channels=1", f"seed={seed}"]
        dvc("exp", "run", *[arg for s in settings for arg in ("-S", s)], "export", cwd=clone)
        found[f"{name}/{seed}"] = workdir / f"{name}-seed{seed}.onnx"
        shutil.copy(clone / "models" / "detector.onnx", found[f"{name}/{seed}"])
        for kept in KEPT:  # its calibration patches' scores and codes
            shutil.copy(clone / "data" / kept, workdir / f"{name}-seed{seed}-{Path(kept).name}")
        print(f"texture detector {name}, seed {seed}: {found[f'{name}/{seed}']}", flush=True)
    shutil.rmtree(clone.parent)
    return found


def texture_no_drift(workdir: Path, detectors: dict[str, Path]) -> dict:
    """No drift on a texture: its calibration patches (the same blocks of the photograph) in random
    halves (halves_no_drift)."""
    found = {}
    for run, detector in detectors.items():
        name, seed = run.split("/")
        images, latents = (workdir / f"{name}-seed{seed}-{Path(kept).name}" for kept in KEPT)
        found[run] = halves_no_drift(images, latents, detector, ("calibration",))
        print(f"no drift, {run}: {found[run]}", flush=True)
    return found


def halves_no_drift(
    images_csv: Path, latents_npz: Path, detector: Path, roles: tuple, batch: int | None = None
) -> dict:
    """No drift: a pipeline's normal validation images of these roles (images_csv's, with their
    latent codes), split at random into a reference half and a line half, SPLITS times; the line
    half watched against the reference half as `aepipe score` watches (the detector's threshold and
    target; the half's scores and up to REFERENCE_CODES of its codes), in batches of `batch`
    (default: the most the half's codes watch), at the default budget. Each split draws a new
    reference, as another calibration would: streams against one reference share its luck. How
    many of those batches were declared drifted, by test."""
    images = pd.read_csv(images_csv)
    chosen = images["role"].isin(roles).to_numpy()
    scores, dead = images["score"].to_numpy()[chosen], images[DEAD_FRAME].to_numpy()[chosen]
    latents = np.load(latents_npz)["latents"][chosen]
    onnx = OnnxDetector(detector)
    target = decode_reference(onnx.reference, onnx.threshold)[0].target
    flagged = flag_rule(scores, dead, onnx.threshold)
    alarms, batches, fired = 0, 0, dict.fromkeys(TESTS, 0)
    for split in range(SPLITS):
        order = np.random.default_rng(split).permutation(len(scores))
        kept, line = order[: len(order) // 2], order[len(order) // 2 :]
        codes = latents[kept[:REFERENCE_CODES]]
        watch = Watch(Reference(onnx.threshold, target, scores[kept], codes), seed=split)
        size = batch or watch.largest_batch
        for start in range(0, len(line) - size + 1, size):
            batch_of = line[start : start + size]
            verdict = watch.watch(scores[batch_of], flagged[batch_of], latents[batch_of])
            batches, alarms = batches + 1, alarms + verdict.drift
            for test in verdict.fired:
                fired[test] += 1
    return {
        "images": len(scores),
        "batch": size,
        "batches": batches,
        "alarms": alarms,
        "rate": alarms / batches,
        "interval": list(binomial_interval(alarms, batches)),
        "by_test": fired,
    }


def real_drift(workdir: Path, detectors: dict[str, Path]) -> dict:
    """Each texture detector watching its set's good test patches as `aepipe score` does, in
    TEXTURE_ORDERS random orders: the flag rate, and the images scored up to the end of the first
    batch declared drifted (its default batch: the most its reference of 1,000 codes watches)."""
    found = {}
    for run, detector in detectors.items():
        files = sorted((workdir / "sets" / run.split("/")[0] / "test" / "good").iterdir())
        delays, rates = [], []
        for order in range(TEXTURE_ORDERS):
            shuffled = [files[i] for i in np.random.default_rng(order).permutation(len(files))]
            log, out = workdir / "log.csv", workdir / "scores.csv"
            command = [
                aepipe_command(),
                "score",
                *map(str, shuffled),
                "--onnx",
                str(detector),
                "--out",
                str(out),
                "--drift-log",
                str(log),
            ]
            subprocess.run(command, cwd=REPO, check=True, capture_output=True)
            watched, scored = pd.read_csv(log), pd.read_csv(out)
            drifted = watched[watched["drift"]]
            delays.append(
                int(watched["images"][: drifted.index[0] + 1].sum()) if len(drifted) else None
            )
            rates.append(float(scored["flagged"].mean()))
        found[run] = {
            "images": len(files),
            "batch": int(watched["images"].iloc[0]),
            "flag_rate": float(np.mean(rates)),
            "delays_images": delays,
        }
        print(f"real drift, {run}: {found[run]}", flush=True)
    return found


def aepipe_command() -> Path:
    return Path(sys.executable).with_name("aepipe")


def throughput(source: Source, rounds: int = 5) -> dict:
    """`aepipe score --onnx` over LINE_IMAGES held-out images (the set repeated, shuffled), watched
    and not, rounds interleaved: images per second, end to end."""
    folder = Path(tempfile.mkdtemp(prefix="drift-speed-"))
    repeats = -(-LINE_IMAGES // len(source.images))
    images = np.tile(source.images, (repeats, 1, 1, 1))[:LINE_IMAGES]
    images = images[np.random.default_rng(0).permutation(LINE_IMAGES)]
    np.save(folder / "line.npy", (images[:, 0] * 255).round().astype(np.uint8))
    seconds = {"watched": [], "unwatched": []}
    for _ in range(rounds):
        for mode, flag in (("unwatched", ["--no-watch"]), ("watched", [])):
            started = time.perf_counter()
            subprocess.run(
                [
                    aepipe_command(),
                    "score",
                    str(folder / "line.npy"),
                    "--onnx",
                    "models/detector.onnx",
                    "--out",
                    str(folder / f"{mode}.csv"),
                    *flag,
                ],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            seconds[mode].append(time.perf_counter() - started)
    shutil.rmtree(folder)
    rates = {mode: [LINE_IMAGES / s for s in times] for mode, times in seconds.items()}
    cost = 1 - np.median(rates["watched"]) / np.median(rates["unwatched"])
    print(f"throughput: {rates}; watching costs {cost:.1%}")
    return {"images": LINE_IMAGES, "images_per_second": rates, "watch_cost": float(cost)}


def measure(source: Source, made: dict, alphas: list[float]) -> dict:
    files = [source.project / "data" / kept for kept in KEPT]
    halves = halves_no_drift(
        *files, source.project / "models" / "detector.onnx", ("calibration", "test"), WATCH_BATCH
    )
    print(f"{source.name}, no drift in random halves: {halves}", flush=True)
    return {
        "held_out_images": len(source.images),
        "reference_codes": len(source.watch(ALPHA).reference.latents),
        "no_drift_halves": halves,
        "by_alpha": {
            f"{alpha:g}": {
                "no_drift": no_drift(source, made, alpha),
                "drifts": delays(source, made, alpha),
            }
            for alpha in alphas
        },
    }


def textures() -> None:
    """The texture detectors' streams: the real drift of their test blocks, and no drift within
    their calibration blocks."""
    workdir = Path(tempfile.mkdtemp(prefix="drift-textures-"))
    detectors = texture_detectors(workdir)
    found = {"real_drift": real_drift(workdir, detectors)}
    found["no_drift"] = texture_no_drift(workdir, detectors)
    alarms = sum(run["alarms"] for run in found["no_drift"].values())
    batches = sum(run["batches"] for run in found["no_drift"].values())
    found["no_drift_every_texture"] = {
        "alarms": alarms,
        "batches": batches,
        "rate": alarms / batches,
        "interval": list(binomial_interval(alarms, batches)),
    }
    write_json(
        RESULTS / "drift-textures.json",
        {"date": date.today().isoformat(), "machine": machine(), "alpha": ALPHA, **found},
    )
    shutil.rmtree(workdir)


def save_streams(path: Path, sources: list[Source], made: dict) -> None:
    """Every watched batch (scores, flags, latent codes) and each detector's reference, for the
    peer."""
    arrays = {}
    for source in sources:
        reference = source.watch(ALPHA).reference
        arrays[f"{source.name}/reference_scores"] = reference.scores
        arrays[f"{source.name}/reference_latents"] = reference.latents
    for key, batches in made.items():
        for part, values in zip(
            ("scores", "flagged", "latents"), zip(*batches, strict=True), strict=True
        ):
            arrays[f"{key}/{part}"] = np.stack(values)
    np.savez(path, **arrays)
    print(f"streams for the peer: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument(
        "--alphas", type=lambda text: [float(a) for a in text.split(",")], default=[ALPHA]
    )
    parser.add_argument("--fashion", nargs="?", const="new", metavar="PROJECT")
    parser.add_argument("--textures", action="store_true")
    parser.add_argument("--streams", type=Path)
    parser.add_argument("--textures-only", action="store_true", help="only drift-textures.json")
    args = parser.parse_args()
    if args.textures_only:
        return textures()
    sources = [held_out(REPO, "mnist")]
    if args.fashion:
        sources.append(held_out(fashion_project(args.fashion), "fashion-mnist"))
    made = {key: parts for source in sources for key, parts in streams(source, args.seeds).items()}
    results = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "batch": WATCH_BATCH,
        "datasets": {source.name: measure(source, made, args.alphas) for source in sources},
        "no_drift": {},
    }
    if args.textures:
        textures()
    results["throughput"] = throughput(sources[0])
    for alpha in (f"{alpha:g}" for alpha in args.alphas):
        counts = [d["by_alpha"][alpha]["no_drift"] for d in results["datasets"].values()]
        alarms, batches = sum(c["alarms"] for c in counts), sum(c["batches"] for c in counts)
        results["no_drift"][alpha] = {
            "alarms": alarms,
            "batches": batches,
            "rate": alarms / batches,
            "interval": list(binomial_interval(alarms, batches)),
        }
        print(f"alpha {alpha}, no drift, every stream: {alarms} of {batches} batches declared")
    halves = [d["no_drift_halves"] for d in results["datasets"].values()]
    alarms, batches = sum(h["alarms"] for h in halves), sum(h["batches"] for h in halves)
    results["no_drift_halves"] = {
        "alarms": alarms,
        "batches": batches,
        "rate": alarms / batches,
        "interval": list(binomial_interval(alarms, batches)),
    }
    write_json(RESULTS / "drift.json", results)
    save_streams(args.streams or Path(tempfile.mkdtemp()) / "drift-streams.npz", sources, made)


if __name__ == "__main__":
    main()
