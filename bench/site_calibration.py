"""A threshold set on site (aepipe.deploy.site_calibration, `aepipe calibrate`), measured: does the
false-alarm rate it promises hold on the line's other good images?

    python bench/site_calibration.py [--draws 20]  # after a default `dvc repro` (its detector.onnx)

Scores the normal validation images the score stage marked for testing (never used for the
pipeline's threshold) with the exported detector, then for each target (1 %, 5 %), `--draws` times:
takes as many of them at random as the target's rule asks for (min_calibration_images) as the site's
good images, sets the threshold on them as `aepipe calibrate` does, and flags the others. Reports
per target each draw's rate on the others, how often it lies inside the interval the new detector
states (its metadata's `interval`: where the rate on new good parts lies, 95 % of the time) and how
often the target lies inside the others' rate's own interval (calibration_check, the pipeline's
verdict, which counts only the test images' noise, not the threshold's). Then the pipeline's two
rules for a 1 % threshold (threshold.method quantile and gpd) on 500 and 1,000 such images, 200
draws each: the mean rate each gets on the others and its root-mean-square distance to 1 %. Results:
bench/results/site_calibration.json.
"""

import argparse
import hashlib
from datetime import date

import numpy as np
import pandas as pd

from aepipe.anomaly.calibration import calibration_check, min_calibration_images
from aepipe.anomaly.detection import per_image_threshold
from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.deploy.onnx_detector import OnnxDetector
from aepipe.deploy.site_calibration import add_images, site_threshold
from provenance import REPO

TARGETS = (0.01, 0.05)


def held_out_scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's scores, dead-frame flags and images of the normal validation images with role
    test."""
    roles = pd.read_csv(REPO / "data" / "scores" / "val_images.csv")
    images = load_split(REPO / "data" / "raw", "val").images[(roles["role"] == "test").to_numpy()]
    floats = (
        images.astype(np.float32)[:, None] / 255
        if images.ndim == 3
        else np.moveaxis(images, -1, 1).astype(np.float32) / 255
    )
    scores, _, _, dead = OnnxDetector(REPO / "models" / "detector.onnx")(floats)
    return scores, dead, floats


def draws(
    scores: np.ndarray, dead: np.ndarray, images: np.ndarray, target: float, count: int
) -> list[dict]:
    rng = np.random.default_rng(0)
    found = []
    for _ in range(count):
        site = np.zeros(len(scores), bool)
        site[rng.choice(len(scores), min_calibration_images(target), replace=False)] = True
        digest = hashlib.sha256()
        add_images(digest, images[site])
        calibration = site_threshold(scores[site], dead[site], [], target, digest.hexdigest())
        check = calibration_check(
            int(np.sum(scores[~site] > calibration["threshold"])), int(np.sum(~site)), target
        )
        low, high = calibration["interval"]
        found.append(
            {
                "threshold": calibration["threshold"],
                "stated_interval": calibration["interval"],
                "rate": check["rate"],
                "inside_stated": bool(low <= check["rate"] <= high),
                "interval": check["interval"],
                "holds": check["holds"],
            }
        )
    return found


def rules_compared(
    scores: np.ndarray, sizes=(500, 1000), target: float = 0.01, count: int = 200
) -> dict:
    """Per calibration size, per rule: the mean false-alarm rate on the other images, and its RMS
    distance to the target, over `count` random calibration sets."""
    rng = np.random.default_rng(1)
    found = {}
    for size in sizes:
        rates = {"quantile": [], "gpd": []}
        for _ in range(count):
            site = np.zeros(len(scores), bool)
            site[rng.choice(len(scores), size, replace=False)] = True
            for rule, got in rates.items():
                got.append(
                    float(
                        np.mean(
                            scores[~site] > per_image_threshold(scores[site], rule, 0.0, 1 - target)
                        )
                    )
                )
        found[str(size)] = {
            rule: {
                "mean_rate": float(np.mean(got)),
                "rms_to_target": float(np.sqrt(np.mean((np.array(got) - target) ** 2))),
            }
            for rule, got in rates.items()
        }
        print(
            f"{size} images for 1 %: "
            + ", ".join(
                f"{rule} mean {value['mean_rate']:.2%}, RMS {value['rms_to_target']:.2%}"
                for rule, value in found[str(size)].items()
            )
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    scores, dead, images = held_out_scores()
    results = {
        "date": date.today().isoformat(),
        "images": len(scores),
        "draws": args.draws,
        "targets": {},
    }
    for target in TARGETS:
        found = draws(scores, dead, images, target, args.draws)
        rates = np.array([draw["rate"] for draw in found])
        results["targets"][f"{target:g}"] = {
            "site_images": min_calibration_images(target),
            "mean_rate": float(rates.mean()),
            "rates_min_max": [float(rates.min()), float(rates.max())],
            "inside_stated": sum(draw["inside_stated"] for draw in found),
            "holds": sum(draw["holds"] for draw in found),
            "draws": found,
        }
        row = results["targets"][f"{target:g}"]
        print(
            f"target {target:.0%}: {row['site_images']:,} site images, rate on the other "
            f"{len(scores) - row['site_images']:,}: mean {rates.mean():.2%} "
            f"({rates.min():.2%}–{rates.max():.2%}); inside the stated interval in "
            f"{row['inside_stated']} of {args.draws} draws, the target inside the rate's interval "
            f"in {row['holds']}"
        )
    results["rules_for_1_percent"] = rules_compared(scores)
    write_json(REPO / "bench" / "results" / "site_calibration.json", results)


if __name__ == "__main__":
    main()
