"""Our localisation and detection metrics against anomalib's implementations, on the same maps.

    # in anomalib 2.7's venv:
    PYTHONPATH=src:bench /path/to/anomalib-venv/bin/python bench/studies/metric_check.py

anomalib is no dependency of aepipe: run this from a separate virtual environment where `pip install
anomalib==2.7.0` sits beside this project's packages (bench/README.md says how). The maps are those
of an inspection set's defects as a segmenter draws them: each image's mask (one to three discs or
thin lines, as bench/inspection_sets.py draws its defects; a third of the images good) blurred,
scaled and given noise, at two noise levels. For each: aepipe's AUPRO
(`aepipe.anomaly.detection.aupro`), pixel ROC AUC and image ROC AUC (the maps' peaks) beside
anomalib's AUPRO and AUROC of the same arrays.

Results: bench/studies/results/metric_check.json and a table on stdout.
"""

from datetime import date

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from aepipe.anomaly.detection import aupro, image_roc_auc, pixel_roc_auc
from aepipe.atomic import write_json
from provenance import STUDY_RESULTS

RESULT = STUDY_RESULTS / "metric_check.json"
IMAGES, SIDE = 300, 64


def masks_of_defects(rng: np.random.Generator) -> np.ndarray:
    """(IMAGES, SIDE, SIDE) masks: a third of them empty, the others one to three discs or thin
    lines."""
    rows, columns = np.mgrid[:SIDE, :SIDE]
    masks = np.zeros((IMAGES, SIDE, SIDE), bool)
    for mask in masks[IMAGES // 3 :]:
        for _ in range(rng.integers(1, 4)):
            centre = rng.uniform(8, SIDE - 8, 2)
            if rng.random() < 0.5:
                mask |= (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= rng.uniform(
                    2, 8
                ) ** 2
            else:
                angle, length = rng.uniform(0, np.pi), rng.uniform(10, 30)
                along = (rows - centre[0]) * np.sin(angle) + (columns - centre[1]) * np.cos(angle)
                across = -(rows - centre[0]) * np.cos(angle) + (columns - centre[1]) * np.sin(angle)
                mask |= (np.abs(across) <= 0.8) & (np.abs(along) <= length / 2)
    return masks


def maps_of(masks: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    strength = rng.uniform(0.2, 1.0, (len(masks), 1, 1))
    return np.stack(
        [gaussian_filter(mask.astype(float), 1.5) for mask in masks]
    ) * strength + rng.normal(0, noise, masks.shape)


def anomalib_metrics(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from anomalib.metrics.aupro import _AUPRO
    from anomalib.metrics.auroc import _AUROC

    maps_t, masks_t = torch.from_numpy(maps).float(), torch.from_numpy(masks.astype(np.int64))
    region = _AUPRO(fpr_limit=0.3)
    region.update(maps_t, masks_t)
    pixels, images = _AUROC(), _AUROC()
    pixels.update(maps_t.flatten(), masks_t.flatten())
    images.update(maps_t.flatten(1).amax(1), masks_t.flatten(1).amax(1))
    return {
        "aupro": float(region.compute()),
        "pixel_roc_auc": float(pixels.compute()),
        "image_roc_auc": float(images.compute()),
    }


def ours(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    peaks, defective = (
        maps.reshape(len(maps), -1).max(axis=1),
        masks.reshape(len(masks), -1).any(axis=1),
    )
    return {
        "aupro": aupro(maps, masks),
        "pixel_roc_auc": pixel_roc_auc(maps, masks),
        "image_roc_auc": image_roc_auc(peaks[~defective], peaks[defective]),
    }


def main() -> None:
    import anomalib

    rng = np.random.default_rng(0)
    masks = masks_of_defects(rng)
    rows = {}
    for noise in (0.05, 0.3):
        maps = maps_of(masks, noise, rng)
        rows[f"noise {noise}"] = {
            "aepipe": ours(maps, masks),
            "anomalib": anomalib_metrics(maps, masks),
        }
    write_json(
        RESULT,
        {
            "date": date.today().isoformat(),
            "anomalib": anomalib.__version__,
            "images": IMAGES,
            "side": SIDE,
            "rows": rows,
        },
    )
    print("| maps | metric | aepipe | anomalib | difference |\n| --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        for metric, value in row["aepipe"].items():
            theirs = row["anomalib"][metric]
            print(f"| {name} | {metric} | {value:.6f} | {theirs:.6f} | {value - theirs:+.1e} |")


if __name__ == "__main__":
    main()
