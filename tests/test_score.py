"""`aepipe score` on real image files, with the model and threshold of a real pipeline run."""

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aepipe.mnist import load_split

AEPIPE = str(Path(sys.executable).parent / "aepipe")


def score(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AEPIPE, "score", *args], cwd=project, capture_output=True, text=True)


def rows(output: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(output)))


@pytest.fixture(scope="module")
def digits(project) -> np.ndarray:
    return load_split(project / "data" / "raw", "val", 8).images


@pytest.fixture
def folder(tmp_path, digits) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    for index, digit in enumerate(digits[:4]):
        Image.fromarray(digit).save(folder / f"digit{index}.png")
    Image.fromarray(255 - digits[4]).save(folder / "inverted.png")
    Image.fromarray(digits[5]).resize((56, 56)).save(folder / "big.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    return folder


def test_a_folder_of_images_is_scored_and_the_inverted_one_flagged(project, folder):
    result = score(project, str(folder))
    assert result.returncode == 0, result.stderr
    table = {Path(row["source"]).name: row for row in rows(result.stdout)}
    assert sorted(table) == ["big.jpg", "digit0.png", "digit1.png", "digit2.png", "digit3.png", "inverted.png"]
    threshold = json.loads((project / "reports" / "threshold.json").read_text())["per_image"]["threshold"]
    for row in table.values():
        assert row["flagged"] == str(float(row["score"]) > threshold).lower()
    assert table["inverted.png"]["flagged"] == "true"
    assert float(table["inverted.png"]["score"]) > max(float(table[f"digit{i}.png"]["score"]) for i in range(4))


def test_scores_match_the_pipelines_own_per_image_losses(project, digits, tmp_path):
    np.save(tmp_path / "digits.npy", digits)
    out = tmp_path / "scores.csv"
    result = score(project, str(tmp_path / "digits.npy"), "--out", str(out))
    assert result.returncode == 0 and result.stdout == ""
    scored = rows(out.read_text())
    assert [row["source"] for row in scored][:2] == [f"{tmp_path / 'digits.npy'}[0]", f"{tmp_path / 'digits.npy'}[1]"]
    expected = [float(line.split(",")[-1]) for line in (project / "data" / "losses" / "val_images.csv").read_text().splitlines()[1:9]]
    assert [float(row["score"]) for row in scored] == pytest.approx(expected, rel=1e-4)


def test_invert_flag_turns_dark_ink_on_light_paper_into_mnist_style(project, digits, tmp_path):
    Image.fromarray(255 - digits[0]).save(tmp_path / "paper.png")
    plain = float(rows(score(project, str(tmp_path / "paper.png")).stdout)[0]["score"])
    inverted = float(rows(score(project, str(tmp_path / "paper.png"), "--invert").stdout)[0]["score"])
    assert inverted < plain


def bad_npy(path: Path, array) -> Path:
    np.save(path, array)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "empty", "empty: no .png, .jpg or .jpeg files in this folder"),
    (lambda d: d / "missing.png", "missing.png: no such file or folder"),
    (lambda d: d / "fake.png", "fake.png: not a readable PNG or JPEG image"),
    (lambda d: d / "data.csv", "data.csv: unsupported file; expected .png, .jpg, .jpeg, .npy or a folder"),
    (lambda d: bad_npy(d / "shape.npy", np.zeros((3, 32, 32), np.uint8)), "expected (28, 28), (N, 28, 28) or (N, 1, 28, 28)"),
    (lambda d: bad_npy(d / "range.npy", np.full((2, 28, 28), 7.5)), "expected uint8 (0–255) or floats in [0, 1]"),
    (lambda d: d / "huge.png", "huge.png: 4100×4100 pixels is too large"),
])
def test_bad_inputs_are_refused_clearly(project, tmp_path, make, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.png").write_text("this is text")
    (tmp_path / "data.csv").write_text("a,b\n")
    if "huge" in message:
        Image.new("L", (4100, 4100)).save(tmp_path / "huge.png")
    result = score(project, str(make(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_threshold_of_another_model_is_refused(project, tmp_path, folder):
    threshold = json.loads((project / "reports" / "threshold.json").read_text())
    threshold["model_sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(threshold))
    result = score(project, str(folder), "--threshold", str(tmp_path / "other.json"))
    assert result.returncode == 2 and "was computed for another model" in result.stderr

    result = score(project, str(folder), "--threshold", str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "absent.json: threshold file not found" in result.stderr

    shutil.copy(project / "params.yaml", tmp_path / "params.json")
    result = score(project, str(folder), "--threshold", str(tmp_path / "params.json"))
    assert result.returncode == 2 and "not a threshold file written by the threshold stage" in result.stderr

    (tmp_path / "not-a-model.pt").write_bytes(b"nonsense")
    result = score(project, str(folder), "--model", str(tmp_path / "not-a-model.pt"))
    assert result.returncode == 2 and "was computed for another model" in result.stderr
