"""`aepipe score` on real image files, with the model and threshold of a real pipeline run."""

import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aepipe.cli import main
from aepipe.data.dataset import load_split

AEPIPE = str(Path(sys.executable).parent / "aepipe")


def score_command(project: Path, *args: str) -> subprocess.CompletedProcess:
    """`aepipe score`, the installed command, as a user runs it."""
    return subprocess.run([AEPIPE, "score", *args], cwd=project, capture_output=True, text=True)


def main_result(project: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """The command's `main` in this process: the same code and arguments, without a new process
    importing torch again (two seconds each)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(project),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            main(argv)
            returncode = 0
        except SystemExit as stopped:
            returncode = stopped.code
    return subprocess.CompletedProcess(
        ["aepipe", *argv], returncode, stdout.getvalue(), stderr.getvalue()
    )


def score(project: Path, *args: str) -> subprocess.CompletedProcess:
    return main_result(project, ["score", *args])


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
    result = score_command(project, str(folder))
    assert result.returncode == 0, result.stderr
    table = {Path(row["source"]).name: row for row in rows(result.stdout)}
    assert sorted(table) == [
        "big.jpg",
        "digit0.png",
        "digit1.png",
        "digit2.png",
        "digit3.png",
        "inverted.png",
    ]
    threshold = json.loads((project / "reports" / "threshold.json").read_text())["per_image"][
        "threshold"
    ]
    for row in table.values():
        assert row["flagged"] == str(float(row["score"]) > threshold).lower()
    assert table["inverted.png"]["flagged"] == "true"
    assert float(table["inverted.png"]["score"]) > max(
        float(table[f"digit{i}.png"]["score"]) for i in range(4)
    )


def test_scores_match_the_pipelines_own_per_image_scores(project, digits, tmp_path):
    np.save(tmp_path / "digits.npy", digits)
    out = tmp_path / "scores.csv"
    result = score(project, str(tmp_path / "digits.npy"), "--out", str(out))
    assert result.returncode == 0 and result.stdout == ""
    scored = rows(out.read_text())
    assert [row["source"] for row in scored][:2] == [
        f"{tmp_path / 'digits.npy'}[0]",
        f"{tmp_path / 'digits.npy'}[1]",
    ]
    expected = pd.read_csv(project / "data" / "scores" / "val_images.csv")["score"].head(8).tolist()
    # The stages run with AVX2 kernels (dvc.yaml's pinned_cpu), this process with the CPU's own:
    # float32 rounds otherwise, and the small run's latent covariance amplifies it (as in
    # test_export).
    threshold = json.loads((project / "reports" / "threshold.json").read_text())["per_image"][
        "threshold"
    ]
    assert [float(row["score"]) for row in scored] == pytest.approx(
        expected, abs=1e-3 * abs(threshold)
    )


def test_dead_frames_are_flagged_as_such_by_the_model_and_by_the_detector(
    project, digits, tmp_path
):
    frames = np.stack(
        [np.zeros((28, 28)), np.full((28, 28), 255), np.full((28, 28), 90), digits[0]]
    ).astype(np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    for detector in ([], ["--onnx", "models/detector.onnx"]):
        result = score(project, str(tmp_path / "frames.npy"), *detector)
        assert result.returncode == 0, result.stderr
        scored = rows(result.stdout)
        assert [row["dead_frame"] for row in scored] == ["true", "true", "true", "false"], detector
        assert [row["flagged"] for row in scored[:3]] == ["true"] * 3, detector


def test_maps_writes_one_png_per_image_of_it_and_its_anomaly_map(project, digits, folder, tmp_path):
    import torch

    from aepipe.anomaly.maps import error_maps
    from aepipe.figures.overlay import anomaly_overlay
    from aepipe.model.autoencoder import load_model

    patched = digits[:3].copy()
    patched[:, 2:10, 2:10] = 255  # a white square in the top left corner, away from the strokes
    np.save(tmp_path / "patched.npy", patched)
    maps = tmp_path / "maps"
    result = score(
        project, str(folder / "big.jpg"), str(tmp_path / "patched.npy"), "--maps", str(maps)
    )
    assert result.returncode == 0, result.stderr
    names = sorted(path.name for path in maps.iterdir() if not path.name.endswith("_map.png"))
    assert names == [
        "0000-big.png",
        "0001-patched-0.png",
        "0002-patched-1.png",
        "0003-patched-2.png",
    ]
    assert Image.open(maps / "0000-big_map.png").size == (56, 56), (
        "the map alone, at the image's own size"
    )
    images = torch.from_numpy(patched).float().div(255).unsqueeze(1)
    expected_maps = error_maps(load_model(project / "models" / "model.pt"), images).numpy()
    assert expected_maps[:, 2:10, 2:10].mean() > 2 * expected_maps[:, 12:, 12:].mean(), (
        "the map lights up the square"
    )
    for name, image, error_map in zip(names[1:], patched, expected_maps, strict=True):
        picture = np.asarray(Image.open(maps / name).convert("RGB")).astype(float) / 255
        assert picture.shape == (224, 448, 3)  # the image and its map, side by side, 8 times larger
        assert picture[::8, :224:8] == pytest.approx(
            np.repeat(1 - image[..., None] / 255, 3, axis=2), abs=1 / 255
        )
        assert picture[::8, 224::8] == pytest.approx(
            anomaly_overlay(image / 255, error_map), abs=2 / 255
        )
        alone = np.asarray(Image.open(maps / name.replace(".png", "_map.png"))).astype(float) / 255
        assert alone == pytest.approx(error_map, abs=1 / 255)


def test_maps_refuses_a_file_where_a_folder_is_expected(project, folder, tmp_path):
    (tmp_path / "taken").write_text("a file")
    result = score_command(project, str(folder), "--maps", str(tmp_path / "taken"))
    assert (
        result.returncode == 2
        and "--maps" in result.stderr
        and "expected a folder" in result.stderr
    )
    assert result.stdout == "" and (tmp_path / "taken").read_text() == "a file"


def test_invert_flag_turns_dark_ink_on_light_paper_into_mnist_style(project, digits, tmp_path):
    Image.fromarray(255 - digits[0]).save(tmp_path / "paper.png")
    plain = float(rows(score(project, str(tmp_path / "paper.png")).stdout)[0]["score"])
    inverted = float(
        rows(score(project, str(tmp_path / "paper.png"), "--invert").stdout)[0]["score"]
    )
    assert inverted < plain


def bad_npy(path: Path, array) -> Path:
    np.save(path, array)
    return path


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty", "empty: no PNG, JPEG, TIFF, BMP or WebP files in this folder"),
        ("missing.png", "missing.png: no such file or folder"),
    ],
)
def test_a_mistake_in_the_command_is_refused_before_anything_is_scored(
    project, folder, tmp_path, name, message
):
    (tmp_path / "empty").mkdir()
    result = score(project, str(folder), str(tmp_path / name))
    assert (
        result.returncode == 2 and result.stderr.startswith("error: ") and message in result.stderr
    )
    assert "Traceback" not in result.stderr and result.stdout == ""


BAD_FILES = {  # each file that cannot be scored, and what its row's error says
    "fake.png": "fake.png: not a readable image (UnidentifiedImageError); expected a PNG, JPEG, "
    "TIFF, BMP or WebP file",
    "huge.png": "huge.png: 4100×4100 pixels is too large",
    "tiny.png": "tiny.png: 20×20 pixels is smaller than the 28×28 the model takes",
    "truncated.png": "truncated.png: not a readable image (OSError)",
    "data.csv": "data.csv: unsupported file; expected a PNG, JPEG, TIFF, BMP or WebP image, a .npy "
    "array or a folder",
    "shape.npy": "shape.npy: array of shape (3, 32, 32); the model takes 1×28×28 (greyscale) "
    "images",
    "range.npy[1]": "range.npy[1]: float64 values from 7.5 to 7.5; expected uint8 (0–255) or "
    "floats in [0, 1]",
}


@pytest.fixture
def line(tmp_path, digits) -> list[str]:
    """A night's scans: 300 good digits in a folder (two batches) with four bad files among them,
    and three bad paths beside it."""
    scans = tmp_path / "night"
    scans.mkdir()
    for index in range(300):
        Image.fromarray(digits[index % len(digits)]).save(scans / f"scan{index:03d}.png")
    (scans / "fake.png").write_text("this is text")
    Image.new("L", (4100, 4100)).save(scans / "huge.png")
    Image.new("L", (20, 20)).save(scans / "tiny.png")
    (scans / "truncated.png").write_bytes((scans / "scan000.png").read_bytes()[:60])
    (tmp_path / "data.csv").write_text("a,b\n")
    ranged = np.zeros((3, 28, 28))
    ranged[1] = 7.5
    np.save(tmp_path / "range.npy", ranged)
    bad_npy(tmp_path / "shape.npy", np.zeros((3, 32, 32), np.uint8))
    return [str(scans), *(str(tmp_path / name) for name in ("data.csv", "shape.npy", "range.npy"))]


def test_files_that_cannot_be_scored_become_rows_naming_why_and_the_others_are_scored(
    project, line, tmp_path
):
    out = tmp_path / "night.csv"
    by_model = score(project, *line, "--out", str(out))
    assert (
        by_model.returncode == 1
        and "7 of 309 images could not be scored; the error column says why" in by_model.stderr
    )
    table = rows(out.read_text())
    assert not out.with_name("night.csv.partial").exists()
    failed = {Path(row["source"]).name: row for row in table if row["error"]}
    assert sorted(failed) == sorted(BAD_FILES)
    for name, message in BAD_FILES.items():
        assert (
            message in failed[name]["error"]
            and failed[name]["score"] == failed[name]["flagged"] == ""
        ), name
    scored = [row for row in table if not row["error"]]
    assert len(scored) == 302 and all(
        row["score"] and row["flagged"] in ("true", "false") for row in scored
    )
    assert [row["source"] for row in scored[-2:]] == [f"{line[3]}[0]", f"{line[3]}[2]"], (
        "in the order given"
    )
    by_detector = score(project, *line, "--onnx", "models/detector.onnx")
    assert by_detector.returncode == 1
    assert [(row["source"], row["error"], row["flagged"]) for row in rows(by_detector.stdout)] == [
        (row["source"], row["error"], row["flagged"]) for row in table
    ]


def test_strict_scores_all_or_nothing(project, line, tmp_path):
    out = tmp_path / "night.csv"
    out.write_text("last night's scores")
    for detector in ([], ["--onnx", "models/detector.onnx"]):
        result = score(project, *line, "--strict", "--out", str(out), *detector)
        assert result.returncode == 2 and "fake.png: not a readable image" in result.stderr, (
            detector
        )
        assert out.read_text() == "last night's scores" and sorted(
            path.name for path in tmp_path.glob("*night.csv*")
        ) == ["night.csv"]
        assert score(project, *line, "--strict", *detector).stdout == ""
    assert score(project, line[0] + "/scan001.png", "--strict", "--out", str(out)).returncode == 0
    assert [row["source"] for row in rows(out.read_text())] == [line[0] + "/scan001.png"]


def test_an_interrupted_run_leaves_the_old_csv_and_the_rows_of_every_image_scored(
    project, line, tmp_path, monkeypatch
):
    from aepipe.deploy import cli

    out = tmp_path / "night.csv"
    out.write_text("last night's scores")
    written = []

    def interrupted_in_the_second_batch(row):
        if len(written) == 256 + 10:
            raise KeyboardInterrupt
        written.append(row.source)
        return real(row)

    real = cli.csv_row
    monkeypatch.setattr(cli, "csv_row", interrupted_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        score(project, line[0], "--out", str(out))
    assert out.read_text() == "last night's scores"
    done = rows(out.with_name("night.csv.partial").read_text())
    assert [row["source"] for row in done] == written and len(written) == 266


def test_batches_are_worked_on_side_by_side_and_handed_back_in_order():
    import threading
    import time

    from aepipe.deploy.inputs import worked_in_order

    together = threading.Barrier(3, timeout=10)  # the first three meet only if they run at once
    running, most, lock = [0], [0], threading.Lock()

    def work(item: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if item < 3:
            together.wait()
        time.sleep(0.01 * (5 - item % 5))  # the earlier ones finish later
        with lock:
            running[0] -= 1
        if item == 11:
            raise ValueError("item 11")
        return item * item

    results = worked_in_order(range(12), work, 3)
    assert [next(results) for _ in range(11)] == [(item, item * item) for item in range(11)]
    assert most[0] == 3
    with pytest.raises(ValueError, match="item 11"):
        next(results)


def test_scoring_memory_does_not_grow_with_the_number_of_images(project, tmp_path):
    import tracemalloc

    from aepipe.deploy.scorers import scoring_workers

    images = load_split(project / "data" / "raw", "val").images
    # What may be held at once, whatever the number of images: a batch of 256 is 0.8 MB as float32,
    # one being scored on each worker holds four (its images, their stack, its maps and their
    # concatenation), and three more wait or are read. How many of them a run holds at its peak
    # depends on the threads.
    batch = 256 * 28 * 28 * 4
    most_held = (4 * scoring_workers() + 3) * batch
    # four times what may be held: held whole, it would be over
    count = 4 * most_held // (28 * 28 * 4)
    np.save(tmp_path / "many.npy", np.resize(images, (count, *images.shape[1:])))
    tracemalloc.start()
    result = score(
        project,
        str(tmp_path / "many.npy"),
        "--onnx",
        "models/detector.onnx",
        "--out",
        str(tmp_path / "out.csv"),
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.returncode == 0 and len(rows((tmp_path / "out.csv").read_text())) == count
    assert peak < most_held, (count, peak, most_held)


def test_an_image_stored_sideways_is_scored_and_mapped_as_it_displays(project, digits, tmp_path):
    upright = Image.fromarray(digits[0]).resize((28, 42))  # taller than wide, as it displays
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned by 90°: viewers turn it back clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.png", exif=exif)
    upright.save(tmp_path / "upright.png")
    result = score(
        project,
        str(tmp_path / "upright.png"),
        str(tmp_path / "sideways.png"),
        "--maps",
        str(tmp_path / "maps"),
    )
    assert result.returncode == 0, result.stderr
    upright_row, sideways_row = rows(result.stdout)
    assert sideways_row["score"] == upright_row["score"]
    assert Image.open(tmp_path / "maps" / "0001-sideways_map.png").size == (28, 42)


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
    assert (
        result.returncode == 2
        and "not a threshold file written by the threshold stage" in result.stderr
    )

    threshold = json.loads((project / "reports" / "threshold.json").read_text())
    threshold["score_sha256"] = "0" * 64
    (tmp_path / "other-score.json").write_text(json.dumps(threshold))
    result = score(project, str(folder), "--threshold", str(tmp_path / "other-score.json"))
    assert result.returncode == 2 and "was computed for another anomaly score" in result.stderr

    (tmp_path / "not-a-model.pt").write_bytes(b"nonsense")
    result = score(project, str(folder), "--model", str(tmp_path / "not-a-model.pt"))
    assert result.returncode == 2 and "was computed for another model" in result.stderr


def test_an_anomaly_score_of_another_model_is_refused(project, tmp_path, folder):
    fitted = json.loads((project / "models" / "anomaly_score.json").read_text())
    (tmp_path / "foreign.json").write_text(json.dumps({**fitted, "model_sha256": "0" * 64}))
    result = score(project, str(folder), "--score", str(tmp_path / "foreign.json"))
    assert result.returncode == 2 and "foreign.json was computed for another model" in result.stderr

    result = score(project, str(folder), "--score", str(tmp_path / "absent.json"))
    assert (
        result.returncode == 2
        and "absent.json: anomaly score file not found; run `dvc repro score`" in result.stderr
    )

    (tmp_path / "wrong.json").write_text(json.dumps({**fitted, "method": "psychic"}))
    result = score(project, str(folder), "--score", str(tmp_path / "wrong.json"))
    assert (
        result.returncode == 2
        and "not an anomaly score file written by the score stage" in result.stderr
    )


def test_scoring_with_a_denoising_model_says_so_and_a_plain_model_says_nothing(
    project, tmp_path, folder
):
    from aepipe.atomic import file_sha256
    from aepipe.model.autoencoder import load_model, save_model

    plain = score(project, str(folder))
    assert plain.returncode == 0 and "denoising" not in plain.stderr

    model = load_model(project / "models" / "model.pt")
    model.noise_std = 0.5  # the same weights, recorded as trained on noisy inputs
    save_model(model, tmp_path / "denoising.pt")
    fitted = json.loads((project / "models" / "anomaly_score.json").read_text())
    (tmp_path / "score.json").write_text(
        json.dumps({**fitted, "model_sha256": file_sha256(tmp_path / "denoising.pt")})
    )
    threshold = json.loads((project / "reports" / "threshold.json").read_text())
    (tmp_path / "threshold.json").write_text(
        json.dumps(
            {
                **threshold,
                "model_sha256": file_sha256(tmp_path / "denoising.pt"),
                "score_sha256": file_sha256(tmp_path / "score.json"),
            }
        )
    )
    result = score(
        project,
        str(folder),
        "--model",
        str(tmp_path / "denoising.pt"),
        "--score",
        str(tmp_path / "score.json"),
        "--threshold",
        str(tmp_path / "threshold.json"),
    )
    assert result.returncode == 0, result.stderr
    assert (
        "denoising autoencoder (trained on inputs with Gaussian noise of std up to 0.5)"
        in result.stderr
    )
    assert result.stdout == plain.stdout, "the same weights score the same"


# Imports of torch and matplotlib fail in this process: what an install for serving would see.
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "matplotlib"):
            raise ImportError(name + " is not installed here")
sys.meta_path.insert(0, NoTorch())
from aepipe.cli import main
main(sys.argv[1:])
"""


def test_the_exported_detector_scores_files_and_draws_maps_as_the_model_does_without_torch(
    project, folder, tmp_path
):
    by_model = rows(score(project, str(folder), "--maps", str(tmp_path / "model-maps")).stdout)
    without_torch = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH,
            "score",
            str(folder),
            "--onnx",
            "models/detector.onnx",
            "--maps",
            str(tmp_path / "onnx-maps"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert without_torch.returncode == 0, without_torch.stderr
    by_detector = rows(without_torch.stdout)
    assert [row["source"] for row in by_detector] == [row["source"] for row in by_model]
    assert [row["flagged"] for row in by_detector] == [row["flagged"] for row in by_model]
    threshold = json.loads((project / "reports" / "threshold.json").read_text())["per_image"][
        "threshold"
    ]
    # printed to 6 digits; the small run's floor is ~1e-3
    for onnx_row, model_row in zip(by_detector, by_model, strict=True):
        assert float(onnx_row["score"]) == pytest.approx(
            float(model_row["score"]), abs=2e-3 * abs(threshold)
        )
    assert sorted(path.name for path in (tmp_path / "onnx-maps").iterdir()) == sorted(
        path.name for path in (tmp_path / "model-maps").iterdir()
    )
    for map_file in (tmp_path / "onnx-maps").glob("*_map.png"):
        onnx_map = np.asarray(Image.open(map_file), dtype=int)
        assert (
            np.abs(
                onnx_map
                - np.asarray(Image.open(tmp_path / "model-maps" / map_file.name), dtype=int)
            ).max()
            <= 1
        )


def test_the_detector_refuses_arrays_of_another_shape_like_the_model(project, tmp_path):
    colour = tmp_path / "colour.npy"
    np.save(colour, np.zeros((2, 28, 28, 3), np.uint8))
    refused = score(project, str(colour), "--onnx", "models/detector.onnx")
    assert (
        refused.returncode == 1
        and "colour.npy: array of shape (2, 28, 28, 3); the model takes 1×28×28" in refused.stdout
    )
    missing = score(project, str(colour), "--onnx", "models/missing.onnx")
    assert (
        missing.returncode == 2 and "models/missing.onnx: detector file not found" in missing.stderr
    )


def test_the_overlay_colours_are_matplotlibs_to_the_bit():
    import matplotlib

    from aepipe.figures.overlay import heat

    values = np.r_[np.random.default_rng(0).random(10_000), 0.0, 1.0, 255 / 256, 1 / 256].astype(
        np.float32
    )
    for typed in (values, values.astype(np.float64)):
        assert np.array_equal(heat(typed), matplotlib.colormaps["YlOrRd"](typed)[..., :3])
