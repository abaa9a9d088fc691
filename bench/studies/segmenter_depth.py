"""The defect segmenter's depth at 64 px, measured in one process on one inspection set: one default
autoencoder, then one segmenter per depth (halvings of the image: 3 is today's rule at 64 px, its
coarsest level 8 px) trained on the same synthetic defects, each scored as the pipeline scores an
inspection set was when it was measured (the peak of its map blurred by 1 px).

    python bench/studies/segmenter_depth.py SETS_DIR SET DEPTH [DEPTH ...]

SETS_DIR holds bench/inspection_sets.py's sets (protocol 2: train on train/good, test on test/);
e.g. `python bench/studies/segmenter_depth.py /tmp/sets brick 2 3 4`. One JSON line per depth on
stdout:
each defect kind's image ROC AUC against test/good, their mean, pixel ROC AUC, AUPRO and the
segmenter's training seconds; bench/studies/results/segmenter_depth.json keeps them (a set and depth
measured again replaces its row).
"""

import json
import subprocess
import sys
import time
from datetime import date

import numpy as np
import torch

from aepipe.anomaly.detection import aupro, pixel_roc_auc
from aepipe.anomaly.maps import anomaly_maps
from aepipe.atomic import write_json
from aepipe.data.folder import read_inspection_set
from aepipe.devices import to_pixels
from aepipe.gaussian_blur import smoothed
from aepipe.model import segmenter_training
from aepipe.model.training import train
from aepipe.params import load_params
from inspection_levers import SIDE, kind_aucs
from provenance import STUDY_RESULTS

# px: anomaly.map_sigma's auto for an inspection set when measured (now chosen from the data)
SIGMA = 1.0
RESULT = STUDY_RESULTS / "segmenter_depth.json"


def scored(
    model,
    images: torch.Tensor,
    labels: np.ndarray,
    masks: np.ndarray,
    kinds: list[str],
    sigma: float = SIGMA,
) -> dict:
    maps = torch.cat(
        [smoothed(anomaly_maps(model, chunk, "segmenter"), sigma) for chunk in images.split(256)]
    ).numpy()
    aucs = kind_aucs(maps.reshape(len(maps), -1).max(axis=1), labels, labels == 0)
    return {
        "kinds": dict(zip(kinds, aucs, strict=True)),
        "mean": round(float(np.mean(aucs)), 3),
        "pixel_roc_auc": round(pixel_roc_auc(maps, masks > 0), 3),
        "aupro": round(aupro(maps, masks > 0), 3),
    }


def commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    sets_dir, name, depths = sys.argv[1], sys.argv[2], [int(depth) for depth in sys.argv[3:]]
    found = read_inspection_set(f"{sets_dir}/{name}", SIDE, 1, 0.2, 0, log=lambda _: None)
    cpu = torch.device("cpu")
    train_images, val_images = to_pixels(found.train.images, cpu), to_pixels(found.val.images, cpu)
    params = load_params("params.yaml").train.model_copy(update={"device": "cpu"})
    model = train(train_images, val_images[:256], params, seed=42, log=lambda _: None).model
    tested = found.calibration == 0
    test_images, labels, masks = (
        val_images[torch.from_numpy(tested)],
        found.val.labels[tested],
        found.masks[tested],
    )
    rows = []
    for depth in depths:
        # The depth rule (segmenter.levels) replaced for this measurement alone.
        segmenter_training.levels = lambda side, depth=depth: depth
        started = time.perf_counter()
        model.segmenter = segmenter_training.train_segmenter(
            model, train_images, params, 42, log=lambda _: None
        )
        rows.append(
            {
                "set": name,
                "depth": depth,
                "date": date.today().isoformat(),
                "commit": commit(),
                "segmenter_seconds": round(time.perf_counter() - started),
                **scored(model, test_images, labels, masks, found.classes.names[1:]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    earlier = json.loads(RESULT.read_text())["rows"] if RESULT.exists() else []
    measured = {(row["set"], row["depth"]) for row in rows}
    kept = [row for row in earlier if (row["set"], row["depth"]) not in measured]
    write_json(RESULT, {"rows": kept + rows})


if __name__ == "__main__":
    main()
