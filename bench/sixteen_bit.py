"""Does a 16-bit scan's depth matter to the detector? The default run's detector scores 2,000
validation digits given detail below one 8-bit level (each pixel ×257 plus a uniform offset of ±128
of 65,535), once at their 16 bits (as `aepipe score` reads a 16-bit file) and once rounded to 8
bits.

    python bench/sixteen_bit.py     # in a project after `dvc repro`; results/sixteen_bit.json
"""

from datetime import date

import numpy as np

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.deploy.onnx_detector import OnnxDetector
from provenance import REPO

IMAGES = 2000


def main() -> None:
    detector = OnnxDetector(REPO / "models" / "detector.onnx")
    digits = load_split(REPO / "data" / "raw", "val", IMAGES).images.astype(np.int64)
    offsets = np.random.default_rng(0).integers(-128, 129, digits.shape)
    deep = np.clip(digits * 257 + offsets, 0, 65535).astype(np.uint16)
    full, _, _, _ = detector((deep.astype(np.float32) / 65535)[:, None])
    rounded, _, _, _ = detector((np.round(deep / 257).astype(np.float32) / 255)[:, None])
    differences = np.abs(full - rounded)
    flags = (full > detector.threshold) != (rounded > detector.threshold)
    results = {
        "date": date.today().isoformat(),
        "images": IMAGES,
        "threshold": detector.threshold,
        "median_score_difference": float(np.median(differences)),
        "max_score_difference": float(differences.max()),
        "max_share_of_threshold": float(differences.max() / abs(detector.threshold)),
        "flags_differ": int(flags.sum()),
    }
    write_json(REPO / "bench" / "results" / "sixteen_bit.json", results)
    print(results)


if __name__ == "__main__":
    main()
