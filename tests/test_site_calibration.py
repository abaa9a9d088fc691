"""`aepipe calibrate`: a threshold set on site from good images, into a copy of the detector or a
threshold file, for the small run's MNIST model; and its refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from aepipe.atomic import file_sha256
from aepipe.data.dataset import load_split
from aepipe.deploy.onnx_detector import OnnxDetector
from aepipe.deploy.site_calibration import site_threshold
from aepipe.errors import AepipeError
from test_score import AEPIPE, NO_TORCH, main_result, rows, score

# 200 images make it usable (aepipe.anomaly.calibration): the small run's data allows it
TARGET = 0.05


@pytest.fixture(scope="module")
def good(project, tmp_path_factory) -> dict:
    """Digits the small run never trained on (it took the first 2,048): 200 for the site, 2,000 to
    check it."""
    images = load_split(project / "data" / "raw", "train").images
    folder = tmp_path_factory.mktemp("line3")
    np.save(folder / "site.npy", images[10_000:10_200])
    np.save(folder / "others.npy", images[20_000:22_000])
    return {"folder": folder, "site": folder / "site.npy", "others": folder / "others.npy"}


def test_the_site_threshold_is_the_goods_quantile_with_its_provenance():
    scores = np.random.default_rng(0).normal(size=400)
    images = "9" * 64  # their sha256
    calibration = site_threshold(
        scores, np.zeros(400, bool), [f"x[{i}]" for i in range(400)], 0.05, images
    )
    assert calibration["images_sha256"] == images
    assert (
        calibration["threshold"] == np.quantile(scores, 0.95) and calibration["false_alarms"] == 20
    )
    assert (
        calibration["interval"][0] < 0.05 < calibration["interval"][1]
        and calibration["images"] == 400
    )
    for target in (0.0, 0.5, 0.7, -0.01):
        with pytest.raises(
            AepipeError,
            match=f"--false-alarms {target:g}: expected the share of good parts to flag",
        ):
            site_threshold(scores, np.zeros(400, bool), [], target, images)
    with pytest.raises(
        AepipeError, match="400 good images for a 1.0% false-alarm target: .* at least 1,000"
    ):
        site_threshold(scores, np.zeros(400, bool), [], 0.01, images)
    dead = np.zeros(400, bool)
    dead[7] = True
    with pytest.raises(AepipeError, match=r"x\[7\]: a dead frame"):
        site_threshold(scores, dead, [f"x[{i}]" for i in range(400)], 0.05, images)


def test_a_detector_calibrated_on_site_keeps_its_promise_on_other_good_parts(project, good):
    out = good["folder"] / "detector-line3.onnx"
    # As on a line's serving install (numpy, Pillow, onnx, onnxruntime, SciPy): no torch, no
    # matplotlib.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH,
            "calibrate",
            str(good["site"]),
            "--onnx",
            "models/detector.onnx",
            "--out",
            str(out),
            "--false-alarms",
            str(TARGET),
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    original, calibrated = OnnxDetector(project / "models" / "detector.onnx"), OnnxDetector(out)
    provenance = json.loads(calibrated.metadata["calibration"])
    assert (
        provenance["images"] == 200
        and provenance["target"] == TARGET
        and provenance["false_alarms"] == 10
    )
    assert provenance["made_from"]["sha256"] == file_sha256(project / "models" / "detector.onnx")
    assert provenance["made_from"]["threshold"] == original.threshold != calibrated.threshold
    assert f"threshold {calibrated.threshold:.6g} from 200 good images" in result.stdout

    others = np.load(good["others"])[:, None].astype(np.float32) / 255
    scores, flagged, _, _ = calibrated(others)
    assert np.array_equal(scores, original(others)[0]), "only the threshold changed"
    assert flagged.tolist() == (scores > calibrated.threshold).tolist(), (
        "the graph flags by the new threshold"
    )
    low, high = provenance["interval"]
    assert low <= flagged.mean() <= high, (flagged.mean(), provenance["interval"])
    # aepipe score reads it unchanged
    scored = rows(score(project, str(good["others"]), "--onnx", str(out)).stdout)
    assert [row["flagged"] == "true" for row in scored] == flagged.tolist()


def test_a_threshold_file_calibrated_on_site_serves_the_torch_files(project, good):
    out = good["folder"] / "threshold-line3.json"
    assert score_calibrate(project, str(good["site"]), "--out", str(out)).returncode == 0
    report = json.loads(out.read_text())["per_image"]
    assert (
        report["calibration"]["images"] == 200
        and report["rule"] == "on site: quantile 0.95 of good images"
    )
    scored = rows(score(project, str(good["others"]), "--threshold", str(out)).stdout)
    rate = np.mean([row["flagged"] == "true" for row in scored])
    assert report["calibration"]["interval"][0] <= rate <= report["calibration"]["interval"][1]
    assert all(
        row["flagged"] == str(float(row["score"]) > report["threshold"]).lower() for row in scored
    )


def test_calibration_is_refused_naming_what_is_wrong(project, good, tmp_path):
    site, detector = str(good["site"]), ["--onnx", "models/detector.onnx"]
    refusals = {
        ("--false-alarms", "0.6"): "--false-alarms 0.6: expected the share of good parts to flag",
        ("--false-alarms", "0.01"): "200 good images for a 1.0% false-alarm target",
        ("--out", "models/detector.onnx"): "the file it is made from",
    }
    for (option, value), message in refusals.items():
        args = {"--false-alarms": str(TARGET), "--out": str(tmp_path / "new.onnx"), option: value}
        result = score_calibrate(
            project,
            site,
            *detector,
            *(item for pair in args.items() for item in pair),
            target=False,
        )
        assert result.returncode == 2 and message in result.stderr, (option, result.stderr)
    np.save(tmp_path / "colour.npy", np.zeros((300, 28, 28, 3), np.uint8))
    (tmp_path / "broken").mkdir()
    for index in range(300):
        Image.fromarray(np.load(good["site"])[index % 200]).save(
            tmp_path / "broken" / f"{index:03d}.png"
        )
    (tmp_path / "broken" / "150.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    for images, message in (
        (tmp_path / "colour.npy", "array of shape (300, 28, 28, 3)"),
        (tmp_path / "broken", "150.png"),
    ):
        result = score_calibrate(
            project, str(images), *detector, "--out", str(tmp_path / "new.onnx")
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "new.onnx").exists(), "nothing half-written"


def score_calibrate(project, *args: str, target: bool = True):
    """`aepipe calibrate ... --false-alarms TARGET` through the command's main, as test_score's
    `score` does."""
    return main_result(
        project, ["calibrate", *args, *(["--false-alarms", str(TARGET)] if target else [])]
    )


def test_no_room_to_write_the_detector_keeps_the_old_one_and_says_so(project, good, tmp_path):
    import resource
    import signal

    out = tmp_path / "line3.onnx"
    out.write_bytes(b"the detector the line runs today")

    def capped() -> None:  # as a full disk: a write past 64 kB fails (EFBIG), the rest runs
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, 65_536))

    done = subprocess.run(
        [AEPIPE, "calibrate", str(good["site"]), "--onnx", "models/detector.onnx"]
        + ["--false-alarms", str(TARGET), "--out", str(out)],
        cwd=project,
        preexec_fn=capped,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "error: no room (File too large)" in done.stderr, done.stderr
    assert "free space, then run the same command again" in done.stderr
    assert out.read_bytes() == b"the detector the line runs today"
    assert sorted(tmp_path.iterdir()) == [out], "no temporary file left"
