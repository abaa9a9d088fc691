"""How far synthetic defects can take the segmenter on one inspection set: the segmenter trained on
the test's own defect kinds (bench/inspection_sets.py's makers, drawn afresh into the training
images, the foreign squares from the test's own photograph: a source no user has) beside the one
trained on the defaults' synthetic defects, both on one default autoencoder, each scored as the
pipeline scores (the peak of its map under the blur auto chooses from the calibration images). Then
each on fresh defects of the test's kinds drawn into 500 of its own training images and into the 500
good test images, against the same images clean: what it learned that holds on new images of the
texture.

    python bench/studies/defect_ceiling.py SETS_DIR SET [SET ...]

SETS_DIR holds bench/inspection_sets.py's sets (protocol 2). One JSON line per set and source on
stdout; bench/studies/results/defect_ceiling.json keeps them (a set and source measured again
replaces its row).
"""

import json
import sys
import time
from datetime import date

import numpy as np
import torch

from aepipe.anomaly.blur_choice import choose_map_sigma
from aepipe.anomaly.detection import image_roc_auc, pixel_roc_auc
from aepipe.anomaly.maps import anomaly_maps
from aepipe.atomic import write_json
from aepipe.data.folder import read_inspection_set
from aepipe.devices import as_floats, eval_batches, to_pixels
from aepipe.model import segmenter_training
from aepipe.model.synthetic_defects import DEFECT_SHARE
from aepipe.model.training import train
from aepipe.params import load_params
from inspection import native_channels
from inspection_levers import SIDE
from inspection_sets import recipes
from provenance import STUDY_RESULTS
from segmenter_depth import commit, scored

RESULT = STUDY_RESULTS / "defect_ceiling.json"
SEED = 42
FRESH_IMAGES = 500


class TestKindDefects:
    """The set's own defect kinds as the segmenter's synthetic defects: (N, C, H, W) float images →
    (the images with one drawn into DEFECT_SHARE of them, their (N, H, W) masks)."""

    def __init__(self, name: str, seed: int):
        _, _, kinds, foreign_photo = recipes()[name]
        self.kinds, self.other = list(kinds.values()), foreign_photo.astype(np.float64) / 255
        self.rng = np.random.default_rng(seed)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # the makers' (H, W[, C]) images
        drawn = images.numpy().astype(np.float64).transpose(0, 2, 3, 1)
        masks = np.zeros(drawn.shape[:3], np.float32)
        for index in np.flatnonzero(self.rng.random(len(drawn)) < DEFECT_SHARE):
            # a view: drawn in place
            image = drawn[index] if drawn.shape[-1] == 3 else drawn[index, ..., 0]
            masks[index] = self.kinds[self.rng.integers(len(self.kinds))](
                image, self.rng, self.other
            )
        return torch.from_numpy(drawn.transpose(0, 3, 1, 2)).float(), torch.from_numpy(masks)


def fresh_defects_found(model, pixels: torch.Tensor, name: str) -> dict:
    """Image ROC AUC (clean against those given a defect) and pixel ROC AUC of the test's kinds
    drawn afresh into these images."""
    clean = as_floats(pixels)
    defective, masks = TestKindDefects(name, SEED + 1)(clean)
    clean_maps, defective_maps = (
        torch.cat([anomaly_maps(model, chunk, "segmenter") for chunk in eval_batches(batch)])
        for batch in (clean, defective)
    )
    has_defect = masks.amax(dim=(1, 2)) > 0
    return {
        "image_roc_auc": round(
            image_roc_auc(
                clean_maps.amax(dim=(1, 2)).numpy(),
                defective_maps[has_defect].amax(dim=(1, 2)).numpy(),
            ),
            3,
        ),
        "pixel_roc_auc": round(pixel_roc_auc(defective_maps.numpy(), masks.numpy() > 0), 3),
    }


def measured(name: str, sets_dir: str) -> list[dict]:
    """The set's two rows: the defaults' synthetic defects and the test's own kinds."""
    found = read_inspection_set(
        f"{sets_dir}/{name}", SIDE, native_channels(name), 0.2, 0, log=lambda _: None
    )
    cpu = torch.device("cpu")
    train_images, val_images = to_pixels(found.train.images, cpu), to_pixels(found.val.images, cpu)
    params = load_params("params.yaml").train.model_copy(update={"device": "cpu"})
    model = train(train_images, val_images[:256], params, seed=SEED, log=lambda _: None).model
    tested = found.calibration == 0
    test_images, labels, masks = (
        val_images[torch.from_numpy(tested)],
        found.val.labels[tested],
        found.masks[tested],
    )
    test_good = test_images[torch.from_numpy(labels == 0)][:FRESH_IMAGES]
    rows, default_maker = [], segmenter_training.DefectMaker
    for source, maker in (
        ("defaults", default_maker),
        ("test kinds", lambda *_: TestKindDefects(name, SEED)),
    ):
        segmenter_training.DefectMaker = maker  # replaced for this measurement alone
        started = time.perf_counter()
        model.segmenter = segmenter_training.train_segmenter(
            model, train_images, params, SEED, log=lambda _: None
        )
        seconds = round(time.perf_counter() - started)
        sigma = choose_map_sigma(
            model, val_images[torch.from_numpy(~tested)], "segmenter", SEED
        ).sigma
        rows.append(
            {
                "set": name,
                "source": source,
                "date": date.today().isoformat(),
                "commit": commit(),
                "segmenter_seconds": seconds,
                "sigma": sigma,
                **scored(model, test_images, labels, masks, found.classes.names[1:], sigma),
                "fresh_in_training_images": fresh_defects_found(
                    model, train_images[:FRESH_IMAGES], name
                ),
                "fresh_in_good_test_images": fresh_defects_found(model, test_good, name),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    segmenter_training.DefectMaker = default_maker
    return rows


def main() -> None:
    sets_dir, names = sys.argv[1], sys.argv[2:]
    rows = [row for name in names for row in measured(name, sets_dir)]
    earlier = json.loads(RESULT.read_text())["rows"] if RESULT.exists() else []
    done = {(row["set"], row["source"]) for row in rows}
    write_json(
        RESULT,
        {"rows": [row for row in earlier if (row["set"], row["source"]) not in done] + rows},
    )


if __name__ == "__main__":
    main()
