"""The drift watch's peer: Alibi Detect's KS and MMD drift detectors on the very batches that
bench/drift.py watched (the same scores and latent codes, batches of 256), at the same false-alarm
rate per batch.

    ../alibi-venv/bin/python bench/peer_alibi_drift.py STREAMS [--no-drift-batches 200] [--out NAME]

Alibi Detect 0.13 pins numpy < 2, so it runs in a venv of its own (bench/README.md#drift), with
torch (its MMD's backend) from the project's venv. KSDrift tests the batch's scores against the
calibration scores the detector carries; MMDDrift (its Gaussian kernel, bandwidth from the
reference, 100 permutations) its latent codes against the reference's codes, the ones the watch
compares with. Each at p 0.005, a batch declared drifted when either fires. MMDDrift's permutations
take about two seconds a batch here, so the no-drift streams are read up to --no-drift-batches
batches, each drifted stream's first five. Beside each drift: the share of those batches declared
drifted (per batch: neither test remembers the batches before) and the images up to the first, for
Alibi and for the watch at the budget whose false-alarm rate is nearest above Alibi's. Results:
bench/results/drift_alibi.json (--out: another file of bench/results; streams without no-drift ones,
bench/drift_faint.py's, are not matched with the watch's).
"""

import argparse
import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
P_VAL = 0.005
DRIFTED_BATCHES = 5
BATCH = 256


def detectors(saved, dataset: str):
    from alibi_detect.cd import KSDrift, MMDDrift

    codes = saved[f"{dataset}/reference_latents"].astype(np.float32)
    return (
        KSDrift(saved[f"{dataset}/reference_scores"], p_val=P_VAL),
        MMDDrift(codes, backend="pytorch", p_val=P_VAL, device="cpu"),
    )


def declared(ks, mmd, scores: np.ndarray, latents: np.ndarray, limit: int) -> list[bool]:
    """Whether each of the stream's first `limit` batches is declared drifted."""
    return [
        bool(
            ks.predict(batch_scores)["data"]["is_drift"]
            or mmd.predict(batch_codes.astype(np.float32))["data"]["is_drift"]
        )
        for batch_scores, batch_codes in zip(scores[:limit], latents[:limit], strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("streams", type=Path)
    parser.add_argument("--no-drift-batches", type=int, default=200)
    parser.add_argument("--out", default="drift_alibi.json")
    args = parser.parse_args()
    saved = np.load(args.streams)
    streams = sorted({key.rsplit("/", 1)[0] for key in saved if "/reference_" not in key})
    results = {"date": date.today().isoformat(), "p_val_each": P_VAL, "datasets": {}}
    for dataset in sorted({stream.split("/")[0] for stream in streams}):
        ks, mmd = detectors(saved, dataset)
        no_drift, delays, rates = {"batches": 0, "alarms": 0}, defaultdict(list), defaultdict(list)
        for stream in (s for s in streams if s.startswith(f"{dataset}/")):
            _, kind, strength, _ = stream.split("/")
            scores, latents = saved[f"{stream}/scores"], saved[f"{stream}/latents"]
            if kind == "none":
                left = args.no_drift_batches - no_drift["batches"]
                if left > 0:
                    found = declared(ks, mmd, scores, latents, left)
                    no_drift["batches"] += len(found)
                    no_drift["alarms"] += sum(found)
                continue
            found = declared(ks, mmd, scores, latents, DRIFTED_BATCHES)
            name = f"{kind} {strength}"
            delays[name].append((found.index(True) + 1) * BATCH if any(found) else None)
            rates[name].extend(found)
            print(dataset, name, found, flush=True)
        no_drift["rate"] = no_drift["alarms"] / max(no_drift["batches"], 1)
        print(dataset, "no drift", no_drift)
        results["datasets"][dataset] = {
            "no_drift": no_drift,
            "delays_images": dict(delays),
            "batches_declared": {name: float(np.mean(found)) for name, found in rates.items()},
            "unseen_within_images": DRIFTED_BATCHES * BATCH,
        }
    if all(found["no_drift"]["batches"] for found in results["datasets"].values()):
        compare(results)
    (RESULTS / args.out).write_text(json.dumps(results, indent=2) + "\n")


def compare(results: dict) -> None:
    """Beside each dataset's delays, the watch's (bench/results/drift.json) at the smallest budget
    whose false-alarm rate is at least the peer's, read to the same first DRIFTED_BATCHES batches:
    per drift, how many of its streams each declared and the median delay of those, and the share
    of batches each declared (the watch's over all of each stream's batches)."""
    ours = json.loads((RESULTS / "drift.json").read_text())["datasets"]
    for dataset, peer in results["datasets"].items():
        budgets = ours[dataset]["by_alpha"]
        matched = min(
            (
                alpha
                for alpha, got in budgets.items()
                if got["no_drift"]["rate"] >= peer["no_drift"]["rate"]
            ),
            key=float,
            default=max(budgets, key=float),
        )
        rows = {}
        for row in budgets[matched]["drifts"]:
            name = f"{row['kind']} {row['strength']:g}"
            seen = [
                d for d in row["delays_images"] if d is not None and d <= DRIFTED_BATCHES * BATCH
            ]
            theirs = [d for d in peer["delays_images"][name] if d is not None]
            rows[name] = {
                "flag_rate": row["flag_rate"],
                "watch": [len(seen), float(np.median(seen)) if seen else None],
                "alibi": [len(theirs), float(np.median(theirs)) if theirs else None],
                "batches_declared": {
                    "watch": row["batches_declared"],
                    "alibi": peer["batches_declared"][name],
                },
            }
            print(dataset, name, rows[name])
        peer["compared"] = {
            "watch_alpha": float(matched),
            "watch_no_drift_rate": budgets[matched]["no_drift"]["rate"],
            "by_drift": rows,
        }


if __name__ == "__main__":
    main()
