"""`aepipe score`'s drift watch on the session's small run (512 validation digits, a reference of
256 calibration codes: batches of at most 64): quiet on the run's own digits, a line whose light
changed declared drifted batch by batch, on the torch path and the detector's alike; the drift log;
--fail-on-drift; the refusals."""

import numpy as np
import pandas as pd
import pytest

from aepipe.data.dataset import load_split
from test_score import score


@pytest.fixture(scope="module")
def line(project, tmp_path_factory) -> dict:
    """The run's validation digits as they are, and as a camera whose light changed sees them."""
    digits = load_split(project / "data" / "raw", "val", 512).images
    folder = tmp_path_factory.mktemp("line")
    brighter = np.clip(digits.astype(np.float32) * 0.6 + 90, 0, 255).astype(np.uint8)
    np.save(folder / "same.npy", digits)
    np.save(folder / "brighter.npy", brighter)
    return {name: folder / f"{name}.npy" for name in ("same", "brighter")}


@pytest.mark.parametrize("path", [[], ["--onnx", "models/detector.onnx"]], ids=["torch", "onnx"])
def test_the_line_is_watched_batch_by_batch_and_a_changed_light_declared(
    project, line, tmp_path, path
):
    same = score(project, str(line["same"]), "--out", str(tmp_path / "same.csv"), *path)
    assert (
        same.returncode == 0
        and "drift watch: 512 images in 8 batches: no drift declared" in same.stderr
    )
    log = pd.read_csv(tmp_path / "same.csv.drift.csv")
    assert (
        log["batch"].tolist() == list(range(1, 9))
        and (log["images"] == 64).all()
        and not log["drift"].any()
    )
    assert (log["flag_rate_low"] <= log["flag_rate"]).all() and (
        log["flag_rate"] <= log["flag_rate_high"]
    ).all()

    changed = score(project, str(line["brighter"]), "--out", str(tmp_path / "brighter.csv"), *path)
    assert changed.returncode == 0, "without --fail-on-drift the exit status is the usual one"
    assert "drift: batch 1 (64 images): " in changed.stderr and "p " in changed.stderr
    log = pd.read_csv(tmp_path / "brighter.csv.drift.csv")
    assert log["drift"].all() and log["fired"].str.contains("latents|scores").all()
    assert len(pd.read_csv(tmp_path / "brighter.csv")) == 512, (
        "every image scored and written as well"
    )

    failed = score(
        project,
        str(line["brighter"]),
        "--fail-on-drift",
        "--drift-log",
        str(tmp_path / "log.csv"),
        *path,
    )
    assert failed.returncode == 3 and len(pd.read_csv(tmp_path / "log.csv")) == 8
    assert score(project, str(line["brighter"]), "--no-watch", *path).stderr == ""


def test_watching_is_refused_where_it_cannot_be_done_naming_what_would_do(project, line, tmp_path):
    import onnx

    small = score(project, str(line["same"]), "--watch-batch", "8")
    assert small.returncode == 2 and "--watch-batch 8: expected 32 to 64 images" in small.stderr
    large = score(
        project, str(line["same"]), "--watch-batch", "128", "--onnx", "models/detector.onnx"
    )
    assert (
        large.returncode == 2
        and "reference of 256 latent codes watches batches of at most" in large.stderr
    )
    graph = onnx.load(project / "models" / "detector.onnx")
    onnx.helper.set_model_props(
        graph, {p.key: p.value for p in graph.metadata_props if p.key != "reference"}
    )
    onnx.save(graph, tmp_path / "older.onnx")
    older = score(project, str(line["same"]), "--onnx", str(tmp_path / "older.onnx"))
    assert older.returncode == 0 and "drift" not in older.stderr, (
        "without a reference it scores, unwatched"
    )
    refused = score(project, str(line["same"]), "--onnx", str(tmp_path / "older.onnx"), "--watch")
    assert refused.returncode == 2
    assert (
        f"--watch: {tmp_path / 'older.onnx'} carries no reference to watch by; export it again"
        in refused.stderr
    )
