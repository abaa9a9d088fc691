"""The faint drifts on which the watch's and Alibi Detect's first alarms differed by a stream in
five (bench/drift.py reads five orders of each drift): MNIST's brightness +2 and noise σ 0.02, in 30
orders each, so that the images up to each stream's first alarm compare. Each stream is its first
five batches of 256, as the peer reads them; the watch at the default budget and at the one matched
to Alibi's false alarms on MNIST (0.02, drift_alibi.json). Results: bench/results/drift_faint.json;
the streams saved for the peer (--streams), whose results go to drift_alibi_faint.json:

    python bench/drift_faint.py --streams /tmp/drift-faint.npz
    ../alibi-venv/bin/python bench/peer_alibi_drift.py /tmp/drift-faint.npz \
        --out drift_alibi_faint.json
"""

import argparse
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from aepipe.anomaly.drift import WATCH_BATCH
from aepipe.atomic import write_json
from drift import REPO, Source, batches_of, drifted, held_out, save_streams, verdicts
from provenance import RESULTS, machine

FAINT = (("brightness", 2), ("noise", 0.02))
ORDERS = 30
FIRST_BATCHES = 5  # of each stream: the peer's
ALPHAS = (0.01, 0.02)


def faint_streams(source: Source) -> dict[str, list[tuple]]:
    """The faint drifts' streams, by "dataset/kind/strength/order", as bench/drift.py makes its five
    (its orders are the first five here)."""
    made, count = {}, len(source.images)
    for kind, strength in FAINT:
        for seed in range(ORDERS):
            changed = source.scored(drifted(source.images, kind, strength, seed))
            order = np.random.default_rng(100 + seed).permutation(count)
            batches = batches_of(changed, order)[:FIRST_BATCHES]
            made[f"{source.name}/{kind}/{strength:g}/{seed}"] = batches
    return made


def first_alarms(source: Source, made: dict, alpha: float) -> dict:
    """Per drift: the images up to each stream's first batch declared drifted (None: none of its
    first five), and the share of all their batches declared."""
    found = {}
    for kind, strength in FAINT:
        keys = [f"{source.name}/{kind}/{strength:g}/{seed}" for seed in range(ORDERS)]
        watched = [verdicts(source, made[key], alpha) for key in keys]
        firsts = [next((v.batch for v in stream if v.drift), None) for stream in watched]
        delays = [first * WATCH_BATCH if first else None for first in firsts]
        seen = [delay for delay in delays if delay]
        found[f"{kind} {strength:g}"] = {
            "delays_images": delays,
            "declared_streams": len(seen),
            "median_delay_images": float(np.median(seen)) if seen else None,
            "batches_declared": float(np.mean([v.drift for s in watched for v in s])),
        }
        print(f"alpha {alpha:g}, {kind} {strength:g}: {found[f'{kind} {strength:g}']}", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=Path)
    args = parser.parse_args()
    source = held_out(REPO, "mnist")
    made = faint_streams(source)
    write_json(
        RESULTS / "drift_faint.json",
        {
            "date": date.today().isoformat(),
            "machine": machine(),
            "orders": ORDERS,
            "batches_per_stream": FIRST_BATCHES,
            "by_alpha": {f"{alpha:g}": first_alarms(source, made, alpha) for alpha in ALPHAS},
        },
    )
    save_streams(args.streams or Path(tempfile.mkdtemp()) / "drift-faint.npz", [source], made)


if __name__ == "__main__":
    main()
