"""Why the watch's latent-code test reads as it does: on the batches bench/drift.py watched (its
--streams file), the share of each drift's batches declared drifted and of the no-drift batches, at
the default budget, by the watch as committed and with its two levers taken back one at a time:

- the null: the batch against a random half of the reference codes, its null drawn with
  replacement from the other half (the test before 2026-12-07), instead of the batch against every
  code and a null from random splits of them;
- the kernel: a bandwidth of the codes' median distance, instead of half of it.

And a lever that would make watching cheaper: fewer reference codes (the first 1,536 or 1,024 of the
2,048 a detector carries, in random order), which cut a watched batch's kernel rows in proportion.
The watch as committed is "splits, 0.5 median"; the test before, "fixed half, 1 median".
The flag-rate and score tests are the watch's in every variant. Each batch is tested alone, so the
shares are per batch. Results: bench/studies/results/drift_kernels.json.

    python bench/studies/drift_kernels.py STREAMS
"""

import argparse
from datetime import date
from pathlib import Path

import numpy as np

from aepipe.anomaly.drift import (
    NULL_DRAWS,
    TESTS,
    WIDTH,
    GaussianKernel,
    Reference,
    Watch,
    squared_distances,
)
from aepipe.atomic import write_json
from provenance import STUDY_RESULTS, machine

ALPHA = 0.01  # `aepipe score`'s --drift-alpha default
FEWER_CODES = (1536, 1024)


class HalfNull:
    """The latent test before: MMD² against a random half of the codes, the null of batches drawn
    with replacement from the other half (a code drawn twice: its pairs with itself left out)."""

    def __init__(self, codes: np.ndarray, width: float):
        order = np.random.default_rng(0).permutation(len(codes))
        against, pool = codes[order[: len(codes) // 2]], codes[order[len(codes) // 2 :]]
        self.kernel = GaussianKernel(against, width)
        scale = -1 / (2 * self.kernel.bandwidth**2)
        pool, against = pool.astype(np.float64), against.astype(np.float64)
        self.pool_gram = np.exp(squared_distances(pool, pool) * scale)
        self.pool_between = np.exp(squared_distances(pool, against) * scale).mean(1)
        self.nulls = {}

    def p_value(self, latents: np.ndarray) -> float:
        size = len(latents)
        if size not in self.nulls:
            rng = np.random.default_rng(0)
            draws = (rng.integers(0, len(self.pool_gram), size) for _ in range(NULL_DRAWS))
            self.nulls[size] = np.array([self.drawn_mmd(drawn) for drawn in draws])
        mmd = self.kernel.mmd(latents)
        return float((1 + np.sum(self.nulls[size] >= mmd)) / (1 + NULL_DRAWS))

    def drawn_mmd(self, drawn: np.ndarray) -> float:
        same = float(np.sum(np.bincount(drawn).astype(np.float64) ** 2))  # a code with itself
        own = (self.pool_gram[np.ix_(drawn, drawn)].sum() - same) / (len(drawn) ** 2 - same)
        return own + self.kernel.reference_term - 2 * self.pool_between[drawn].mean()


def shares(saved, dataset: str) -> dict:
    """Per variant: the share of no-drift batches declared, and of each drift's."""
    codes = saved[f"{dataset}/reference_latents"]
    variants = {  # the watch's, by name: (its kernel's width, how many of the codes it reads)
        **{f"splits, {width:g} median": (width, len(codes)) for width in (WIDTH, 1.0)},
        **{f"splits, {WIDTH:g} median, first {m} codes": (WIDTH, m) for m in FEWER_CODES},
    }
    scores = saved[f"{dataset}/reference_scores"]
    references = {
        name: Reference(np.inf, ALPHA, scores, codes[:m]) for name, (_, m) in variants.items()
    }
    nulls = {name: {} for name in variants}  # each watch's: fitted once
    halves = {width: HalfNull(codes, width) for width in (WIDTH, 1.0)}
    declared = {}
    streams = sorted({key.rsplit("/", 1)[0] for key in saved if "/reference_" not in key})
    for stream in (s for s in streams if s.startswith(f"{dataset}/")):
        kind = "no drift" if "/none/" in stream else " ".join(stream.split("/")[1:3])
        watches = {
            name: Watch(references[name], ALPHA, nulls=nulls[name], width=width)
            for name, (width, _) in variants.items()
        }
        parts = [saved[f"{stream}/{part}"] for part in ("scores", "flagged", "latents")]
        for batch in zip(*parts, strict=True):
            p_values = {name: watch.watch(*batch).p_values for name, watch in watches.items()}
            others = min(p_values[f"splits, {WIDTH:g} median"][t] for t in TESTS if t != "latents")
            latent = {name: p_values[name]["latents"] for name in variants}
            latent |= {f"fixed half, {w:g} median": h.p_value(batch[2]) for w, h in halves.items()}
            for name, p_value in latent.items():
                fired = min(others, p_value) < ALPHA / len(TESTS)
                declared.setdefault(name, {}).setdefault(kind, []).append(fired)
    return {
        name: {kind: float(np.mean(found)) for kind, found in kinds.items()}
        for name, kinds in declared.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("streams", type=Path)
    args = parser.parse_args()
    saved = np.load(args.streams)
    datasets = sorted({key.split("/")[0] for key in saved})
    found = {dataset: shares(saved, dataset) for dataset in datasets}
    for dataset, variants in found.items():
        for name, kinds in variants.items():
            faint = {k: round(v, 2) for k, v in kinds.items() if v < 0.99}
            print(dataset, name, faint, flush=True)
    write_json(
        STUDY_RESULTS / "drift_kernels.json",
        {"date": date.today().isoformat(), "machine": machine(), "alpha": ALPHA, **found},
    )


if __name__ == "__main__":
    main()
