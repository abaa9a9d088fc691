"""The drift watch's peer: Alibi Detect's KS and MMD drift detectors on the very batches that
bench/drift.py watched (the same scores and latent codes, batches of 256), at the same false-alarm
budget per batch (0.01: 0.005 each, Bonferroni over the two).

    ../alibi-venv/bin/python bench/peer_alibi_drift.py STREAMS [--no-drift-batches 200]

Alibi Detect 0.13 pins numpy < 2, so it runs in a venv of its own (bench/README.md#drift), with
torch (its MMD's backend) from the project's venv. KSDrift tests the batch's scores against the
calibration scores the detector carries; MMDDrift (Gaussian kernel, bandwidth from the reference,
100 permutations) its latent codes against half of the reference's codes (the half the watch
compares with; the other half is what the watch draws its null from). A batch is declared drifted
when either fires. MMDDrift's permutations take about a second a batch here, so the no-drift streams
are read up to --no-drift-batches batches, each drifted stream up to its first five. Results:
bench/results/drift_alibi.json.
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

    codes = saved[f"{dataset}/reference_latents"]
    # The watch's split of the reference codes (aepipe.anomaly.drift.Watch, seed 0).
    against = codes[np.random.default_rng(0).permutation(len(codes))[: len(codes) // 2]]
    return (
        KSDrift(saved[f"{dataset}/reference_scores"], p_val=P_VAL),
        MMDDrift(against.astype(np.float32), backend="pytorch", p_val=P_VAL, device="cpu"),
    )


def first_drift(ks, mmd, scores: np.ndarray, latents: np.ndarray, limit: int) -> list[bool]:
    declared = []
    for batch_scores, batch_codes in zip(scores[:limit], latents[:limit], strict=True):
        fired = (
            ks.predict(batch_scores)["data"]["is_drift"]
            or mmd.predict(batch_codes.astype(np.float32))["data"]["is_drift"]
        )
        declared.append(bool(fired))
        if fired and limit == DRIFTED_BATCHES:
            break
    return declared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("streams", type=Path)
    parser.add_argument("--no-drift-batches", type=int, default=200)
    args = parser.parse_args()
    saved = np.load(args.streams)
    streams = sorted({key.rsplit("/", 1)[0] for key in saved if "/reference_" not in key})
    results = {"date": date.today().isoformat(), "p_val_each": P_VAL, "datasets": {}}
    for dataset in sorted({stream.split("/")[0] for stream in streams}):
        ks, mmd = detectors(saved, dataset)
        no_drift, delays = {"batches": 0, "alarms": 0}, defaultdict(list)
        for stream in (s for s in streams if s.startswith(f"{dataset}/")):
            _, kind, strength, _ = stream.split("/")
            scores, latents = saved[f"{stream}/scores"], saved[f"{stream}/latents"]
            if kind == "none":
                left = args.no_drift_batches - no_drift["batches"]
                if left > 0:
                    declared = first_drift(ks, mmd, scores, latents, left)
                    no_drift["batches"] += len(declared)
                    no_drift["alarms"] += sum(declared)
                continue
            declared = first_drift(ks, mmd, scores, latents, DRIFTED_BATCHES)
            delays[f"{kind} {strength}"].append(
                (declared.index(True) + 1) * BATCH if any(declared) else None
            )
            print(dataset, kind, strength, delays[f"{kind} {strength}"][-1], flush=True)
        no_drift["rate"] = no_drift["alarms"] / max(no_drift["batches"], 1)
        print(dataset, "no drift", no_drift)
        results["datasets"][dataset] = {
            "no_drift": no_drift,
            "delays_images": dict(delays),
            "unseen_within_images": DRIFTED_BATCHES * BATCH,
        }
    compare(results)
    (RESULTS / "drift_alibi.json").write_text(json.dumps(results, indent=2) + "\n")


def compare(results: dict) -> None:
    """Beside each dataset's delays, the watch's (bench/results/drift.json) at the smallest budget
    whose false-alarm rate is at least the peer's, read to the same first DRIFTED_BATCHES batches:
    per drift, how many of its streams each declared and the median delay of those."""
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
            }
            print(dataset, name, rows[name])
        peer["compared"] = {
            "watch_alpha": float(matched),
            "watch_no_drift_rate": budgets[matched]["no_drift"]["rate"],
            "by_drift": rows,
        }


if __name__ == "__main__":
    main()
