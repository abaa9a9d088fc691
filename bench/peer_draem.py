"""anomalib's DRAEM on the inspection benchmark's sets, beside ours: the peer trained from scratch.

    PYTHONPATH=src ../anomalib-venv/bin/python bench/peer_draem.py
        [--sets brick,grass,brick-hue,gravel] [--seconds 360]

anomalib 2.7 (a venv of its own: bench/README.md) trains DRAEM (Zavrtanik et al. 2021) through its
own Folder datamodule on each set that bench/inspection_sets.py makes, at the sets' 64×64, for a
training time budget (`--seconds`: ours, the train stage's seconds on the same machine), its Perlin
masks filled from the same outside photographs as ours (bench/inspection_sets.py's write_textures,
as `dtd_dir`: nothing downloaded). Its metrics are anomalib's own (anomalib.metrics' AUROC and
AUPRO) on its predictions in one pass over each set's test images: image ROC AUC per defect kind
against test/good, pixel ROC AUC and AUPRO over every kind.

Results: rows "SET anomalib-draem" in bench/results/inspection.json (with its optimiser steps and
seconds) and a table on stdout.
"""

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from aepipe.atomic import write_json
from inspection import PROTOCOL, RESULTS
from inspection_sets import write_sets, write_textures
from inspection_table import table

BATCH = 8  # DRAEM's own training batch


def kinds_of(root: Path) -> list[str]:
    return sorted(path.name for path in (root / "test").iterdir() if path.name != "good")


def folder(root: Path, kinds: list[str], name: str):
    from anomalib.data import Folder

    return Folder(
        name=name,
        root=root,
        normal_dir="train/good",
        normal_test_dir="test/good",
        abnormal_dir=[f"test/{kind}" for kind in kinds],
        mask_dir=[f"ground_truth/{kind}" for kind in kinds],
        train_batch_size=BATCH,
        eval_batch_size=32,
        num_workers=0,
        val_split_mode="same_as_test",
    )


def trained(root: Path, textures: Path, seconds: float):
    """DRAEM trained on root/train/good for `seconds` at 64×64; (engine, model, optimiser steps,
    seconds taken)."""
    from anomalib.engine import Engine
    from anomalib.models import Draem

    # Its raw scores and maps: no post-processing (it normalises by validation statistics, and no
    # validation runs) and no metrics in the loop (computed below, once, from the predictions).
    model = Draem(
        dtd_dir=textures,
        pre_processor=Draem.configure_pre_processor((64, 64)),
        post_processor=False,
        evaluator=False,
        visualizer=False,
    )
    engine = Engine(
        max_epochs=10_000,
        max_time={"seconds": seconds},
        accelerator="cpu",
        devices=1,
        logger=False,
        # no validation: all the time trains
        limit_val_batches=0,
        default_root_dir=root / "anomalib",
    )
    started = time.perf_counter()
    engine.fit(model=model, datamodule=folder(root, kinds_of(root), "train"))
    return engine, model, engine.trainer.global_step, time.perf_counter() - started


def metric(kind, fields: list[str], **values) -> float:
    """One of anomalib's metrics (anomalib.metrics.AUROC or AUPRO) of these values, as its Evaluator
    feeds it a batch."""
    computed = kind(fields=fields)
    computed.update(SimpleNamespace(**values))
    return float(computed.compute())


def measured(root: Path, textures: Path, seconds: float) -> dict:
    """One set's row: DRAEM trained for `seconds`, one pass over the test images, anomalib's metrics
    of its scores and maps: image ROC AUC per defect kind (its images against test/good), pixel ROC
    AUC and AUPRO over every kind."""
    import torch
    from anomalib.metrics import AUPRO, AUROC

    kinds = kinds_of(root)
    engine, model, steps, took = trained(root, textures, seconds)
    batches = engine.predict(
        model=model, datamodule=folder(root, kinds, "all"), return_predictions=True
    )
    scores, labels = (
        torch.cat([batch.pred_score for batch in batches]),
        torch.cat([batch.gt_label for batch in batches]),
    )
    maps, masks = (
        torch.cat([batch.anomaly_map for batch in batches]),
        torch.cat([batch.gt_mask for batch in batches]),
    )
    of_kind = [Path(path).parent.name for batch in batches for path in batch.image_path]
    per_kind = {}
    for kind in kinds:
        chosen = torch.tensor([name in (kind, "good") for name in of_kind])
        per_kind[kind] = metric(
            AUROC, ["pred_score", "gt_label"], pred_score=scores[chosen], gt_label=labels[chosen]
        )
    pixels = {"anomaly_map": maps, "gt_mask": masks}
    return {
        "kinds": per_kind,
        "mean_kinds": sum(per_kind.values()) / len(per_kind),
        "pixel_roc_auc": metric(AUROC, list(pixels), **pixels),
        "aupro": metric(AUPRO, list(pixels), **pixels),
        "protocol": PROTOCOL,
        "peer": "anomalib 2.7.0 Draem, anomalib's Folder datamodule and metrics",
        "steps": steps,
        "batch_size": BATCH,
        "train_seconds": took,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="brick,grass,brick-hue,gravel")
    parser.add_argument("--seconds", type=float, default=360, help="DRAEM's training time per set")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="peer-draem-"))
    write_sets(work, 64)
    write_textures(work / "outside-textures")
    rows = {
        f"{name} anomalib-draem": measured(work / name, work / "outside-textures", args.seconds)
        for name in args.sets.split(",")
    }
    results = json.loads((RESULTS / "inspection.json").read_text())
    results["rows"].update(rows)
    results["runs"].append(
        {"date": date.today().isoformat(), "peer": "anomalib-draem", "seconds": args.seconds}
    )
    write_json(RESULTS / "inspection.json", results)
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
