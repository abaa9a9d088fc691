"""`aepipe score`'s drift watch on the session's small run (512 validation digits, a reference of
256 calibration codes: batches of at most 64): quiet on the run's own digits, a line whose light
changed declared drifted batch by batch, on the torch path and the detector's alike; the drift log;
--fail-on-drift; the refusals."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from aepipe.data.dataset import load_split
from aepipe.deploy.onnx_detector import OnnxDetector
from test_score import main_result, score


def brighter(digits: np.ndarray) -> np.ndarray:
    """As a camera whose light changed sees them."""
    return np.clip(digits.astype(np.float32) * 0.6 + 90, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def line(project, tmp_path_factory) -> dict:
    """The run's validation digits as they are, and as a camera whose light changed sees them."""
    digits = load_split(project / "data" / "raw", "val", 512).images
    folder = tmp_path_factory.mktemp("line")
    np.save(folder / "same.npy", digits)
    np.save(folder / "brighter.npy", brighter(digits))
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


def test_the_detectors_watch_imports_no_scipy(project, line, tmp_path):
    """SciPy's import alone (about 0.2 s) would cost a short watched run of the torch-free scorer
    more than scoring its images."""
    script = "import sys\nfrom aepipe.cli import main\nmain(sys.argv[1:])\n"
    script += "print('scipy imported:', 'scipy' in sys.modules, file=sys.stderr)"
    out = tmp_path / "same.csv"
    command = ["score", str(line["same"]), "--onnx", "models/detector.onnx", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-c", script, *command], cwd=project, capture_output=True, text=True
    )
    assert "drift watch: 512 images in 8 batches: no drift declared" in run.stderr, run.stderr
    assert run.stderr.endswith("scipy imported: False\n"), run.stderr


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


@pytest.fixture(scope="module")
def new_light(project, tmp_path_factory) -> dict:
    """Digits the small run never trained on (it took the first 2,048), seen after the line's light
    changed for good: 512 good parts to recalibrate on and 512 that come next, drawn at random from
    one pool, as one state's parts are (the file's order is not random: its rows from 20,000 on,
    against a reference from 10,000 on, were declared drifted in one batch of eight)."""
    digits = load_split(project / "data" / "raw", "train").images[10_000:30_000]
    drawn = np.random.default_rng(0).permutation(len(digits))
    folder = tmp_path_factory.mktemp("new_light")
    for name, part in (("good", drawn[:512]), ("next", drawn[512:1024])):
        np.save(folder / f"{name}.npy", brighter(digits[part]))
    return {"good": folder / "good.npy", "next": folder / "next.npy", "folder": folder}


@pytest.mark.parametrize("path", ["torch", "onnx"])
def test_the_loop_back_a_line_recalibrated_on_its_new_good_parts_holds(project, new_light, path):
    """The README's recipe: drift declared; `aepipe calibrate` on good parts of the new state; the
    next batches hold, the promise with them."""
    detector = ["--onnx", "models/detector.onnx"] if path == "onnx" else []
    next_parts = str(new_light["next"])
    assert score(project, next_parts, "--fail-on-drift", *detector).returncode == 3

    out = new_light["folder"] / ("detector-new.onnx" if path == "onnx" else "threshold-new.json")
    calibrated = main_result(
        project,
        [
            "calibrate",
            str(new_light["good"]),
            "--false-alarms",
            "0.05",
            "--out",
            str(out),
            *detector,
        ],
    )
    assert calibrated.returncode == 0, calibrated.stderr
    assert "the drift watch's reference: these images" in calibrated.stdout
    new = ["--onnx", str(out)] if path == "onnx" else ["--threshold", str(out)]
    log = new_light["folder"] / f"{path}.drift.csv"
    held = score(
        project, next_parts, "--fail-on-drift", "--watch-batch", "64", "--drift-log", str(log), *new
    )
    assert held.returncode == 0 and "512 images in 8 batches: no drift declared" in held.stderr
    watched = pd.read_csv(log)
    assert len(watched) == 8 and not watched["drift"].any()
    interval = json.loads(
        OnnxDetector(out).metadata["calibration"] if path == "onnx" else out.read_text()
    )
    low, high = (interval if path == "onnx" else interval["per_image"]["calibration"])["interval"]
    assert low <= watched["running_rate"].iloc[-1] <= high, "the new threshold keeps its promise"
