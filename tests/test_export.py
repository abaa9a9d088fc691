"""The exported detector (models/detector.onnx): the torch detector's scores, flags and maps from
onnxruntime alone, its metadata, and its refusals. Read from the session's small run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from aepipe.anomaly.scores import FittedScore, frame_contrast
from aepipe.atomic import file_sha256
from aepipe.data.dataset import load_split
from aepipe.deploy.export import relative_differences
from aepipe.deploy.onnx_detector import OnnxDetector
from aepipe.errors import AepipeError


@pytest.fixture(scope="module")
def detector(project) -> OnnxDetector:
    return OnnxDetector(project / "models" / "detector.onnx")


def validation_images(project) -> np.ndarray:
    return load_split(project / "data" / "raw", "val", 512).images[:, None].astype(np.float32) / 255


def test_the_detector_scores_and_flags_the_validation_images_as_the_pipeline_did(project, detector):
    scores, flagged, maps, dead = detector(validation_images(project))
    table = pd.read_csv(project / "data" / "scores" / "val_images.csv")
    expected = table["score"].to_numpy()
    threshold = json.loads((project / "reports" / "threshold.json").read_text())["per_image"][
        "threshold"
    ]
    assert detector.threshold == threshold and flagged.tolist() == (expected > threshold).tolist()
    assert dead.tolist() == table["dead_frame"].tolist() == [False] * 512
    report = json.loads((project / "reports" / "export.json").read_text())
    differences = relative_differences(scores, expected, threshold)
    # Two epochs leave a latent space whose covariance amplifies float32 rounding in the combined
    # score: onnxruntime's float32 convolutions may differ from torch's by float32's epsilon times
    # the worst condition number of the latent precisions (about 3e5 here), and no more.
    precisions = json.loads((project / "models" / "anomaly_score.json").read_text())[
        "latent_precisions"
    ]
    bound = (
        max(np.linalg.cond(np.asarray(precision, dtype=np.float64)) for precision in precisions)
        * np.finfo(np.float32).eps
    )
    assert differences.max() <= bound and report["export_max_rel_diff"] <= bound, (
        differences.max(),
        report,
        bound,
    )
    assert report["export_flags_differ"] == 0 and report["max_map_diff"] <= 1e-5
    assert set(report["by_image_set"]) == {
        "validation",
        "gaussian_noise",
        "rotation",
        "patch",
        "invert",
        "blank",
        "saturate",
    }
    assert maps.shape == (512, 28, 28) and 0 <= maps.min() and maps.max() <= 1


def test_a_dead_frame_is_flagged_whatever_its_score(project, detector):
    """Blank, saturated, a flat grey, a flat grey with a camera's faint noise: no digit is that
    flat."""
    flat = np.stack([np.full((1, 28, 28), value, np.float32) for value in (0.0, 1.0, 0.3)])
    noisy = np.clip(0.02 + np.random.default_rng(0).normal(0, 0.004, (1, 1, 28, 28)), 0, 1).astype(
        np.float32
    )
    images = np.concatenate([flat, noisy, validation_images(project)[:4]])
    scores, flagged, _, dead = detector(images)
    assert dead.tolist() == [True] * 4 + [False] * 4
    assert flagged[:4].all() and flagged[4:].tolist() == (scores[4:] > detector.threshold).tolist()
    fitted = FittedScore.from_dict(
        json.loads((project / "models" / "anomaly_score.json").read_text())
    )
    # Far below the flattest digit of the validation set: no normal image comes near it.
    assert (
        0
        < fitted.dead_below
        < 0.5 * float(frame_contrast(torch.from_numpy(validation_images(project))).min())
    )


def test_one_image_at_a_time_gives_what_a_batch_gives(project, detector):
    images = validation_images(project)[:16]
    batched = detector(images)
    for index in (0, 7, 15):
        alone = detector(images[index : index + 1])
        assert (
            alone[0][0] == pytest.approx(batched[0][index], rel=1e-12)
            and alone[1][0] == batched[1][index]
        )
        np.testing.assert_allclose(alone[2][0], batched[2][index], atol=1e-6)


def test_a_detector_of_one_thread_scores_alike(project, detector):
    """aepipe score's detector (threads=1: its calls run side by side, one a core) gives the very
    numbers of the default one."""
    single = OnnxDetector(project / "models" / "detector.onnx", threads=1)
    assert single.session.get_session_options().intra_op_num_threads == 1
    images = validation_images(project)[:64]
    for mine, default in zip(single(images), detector(images), strict=True):
        assert np.array_equal(mine, default)


def test_the_metadata_names_what_the_detector_was_made_from(project, detector):
    metadata = detector.metadata
    assert (metadata["side"], metadata["channels"], metadata["dataset"]) == ("28", "1", "mnist")
    assert (
        metadata["score"]
        == json.loads((project / "models" / "anomaly_score.json").read_text())["method"]
    )
    assert metadata["model_sha256"] == file_sha256(project / "models" / "model.pt")
    params = yaml.safe_load((project / "params.yaml").read_text())
    made_from = json.loads(metadata["params"])
    # the run's, not the file's
    assert made_from["train"]["epochs"] == params["train"]["epochs"] == 2
    # what the detector depends on
    assert sorted(made_from) == ["anomaly", "data", "seed", "threshold", "train"]
    assert json.loads((project / "reports" / "export.json").read_text())[
        "detector_sha256"
    ] == file_sha256(project / "models" / "detector.onnx")


def test_images_of_another_shape_and_other_files_are_refused_naming_both(
    project, detector, tmp_path
):
    colour = np.zeros((2, 3, 28, 28), np.float32)
    with pytest.raises(
        AepipeError,
        match=r"images are 3×28×28 \(colour\), but the detector .* takes 1×28×28 \(greyscale\)",
    ):
        detector(colour)
    with pytest.raises(AepipeError, match=r"images are 1×32×32 \(greyscale\)"):
        detector(np.zeros((1, 1, 32, 32), np.float32))
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes((project / "models" / "model.pt").read_bytes())
    with pytest.raises(AepipeError, match="not an ONNX model"):
        OnnxDetector(not_onnx)
    with pytest.raises(AepipeError, match="detector file not found; run `dvc repro export`"):
        OnnxDetector(tmp_path / "missing.onnx")


# torch's on its TorchScript-based exporter, which the export uses
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_colour_detector_on_the_ssim_map_matches_the_pipeline_also_where_images_are_flat(
    tmp_path,
):
    """map_max on the SSIM map, from a model of 32×32 colour images. SSIM divides by local
    variances, so float32 rounding (onnxruntime's convolutions are not torch's) grows where an image
    is flat: a saturated square here; measured 8e-6 for scores, 1.6e-5 for maps."""
    from aepipe.anomaly.detector import Detector
    from aepipe.anomaly.scores import MapSpec
    from aepipe.deploy.export import export_detector, parity
    from aepipe.model.autoencoder import AutoEncoder

    torch.manual_seed(0)
    model = AutoEncoder(latent_dim=8, side=32, channels=3).eval()
    fitted = FittedScore("map_max", maps=MapSpec("ssim", 1.0), min_contrast=0.05)
    images = torch.rand(24, 3, 32, 32)
    images[:8, :, 8:24, 8:24] = 1.0  # saturated squares
    threshold = float(np.median(Detector(model, fitted).score(images).scores))
    detector, path = Detector(model, fitted, threshold), tmp_path / "detector.onnx"
    export_detector(
        detector, 3, 32, path, {"side": "32", "channels": "3", "threshold": repr(threshold)}
    )
    checked = parity(OnnxDetector(path), detector, images)
    assert (
        checked["max_rel_diff"] <= 5e-5
        and checked["max_map_diff"] <= 5e-5
        and checked["flags_differ"] == 0
    ), checked


def test_the_detector_carries_its_calibration_reference_for_the_drift_watch(project, detector):
    """The calibration images' scores and (up to 2,048 of) their latent codes, in the ONNX metadata
    and in models/reference.json, and a latent output that gives the same codes from onnxruntime."""
    from aepipe.anomaly.drift import decode_reference

    assert detector.latent_output and detector.reference is not None
    assert json.loads((project / "models" / "reference.json").read_text()) == json.loads(
        detector.reference
    )
    reference, nulls = decode_reference(detector.reference, detector.threshold)
    assert nulls == {}, "256 codes watch batches of at most 64: no null for 256 carried"
    table = pd.read_csv(project / "data" / "scores" / "val_images.csv")
    calibration = (table["role"] == "calibration").to_numpy()
    assert reference.target == 0.01 and np.array_equal(
        reference.scores, table["score"].to_numpy()[calibration]
    )
    codes = np.load(project / "data" / "latents.npz")["latents"][calibration]
    assert len(reference.latents) == min(2048, len(codes)) == 256
    assert {row.tobytes() for row in reference.latents} <= {row.tobytes() for row in codes}
    images = validation_images(project)[np.flatnonzero(calibration)[:64]]
    _, _, _, _, latents = detector.run(images)
    assert np.abs(latents - codes[:64]).max() < 1e-4, "onnxruntime's codes are the pipeline's"
    report = json.loads((project / "reports" / "export.json").read_text())
    assert report["by_image_set"]["validation"]["max_latent_diff"] < 1e-4


def test_a_detector_of_the_previous_format_still_scores(project, detector, tmp_path):
    import onnx

    graph = onnx.load(project / "models" / "detector.onnx")
    properties = {prop.key: prop.value for prop in graph.metadata_props}
    onnx.helper.set_model_props(graph, {**properties, "format": "aepipe.detector/2"})
    onnx.save(graph, tmp_path / "older.onnx")
    older = OnnxDetector(tmp_path / "older.onnx")
    images = validation_images(project)[:8]
    assert not older.latent_output and np.array_equal(older(images)[0], detector(images)[0])
    properties["format"] = "aepipe.detector/1"
    onnx.helper.set_model_props(graph, properties)
    onnx.save(graph, tmp_path / "oldest.onnx")
    with pytest.raises(
        AepipeError, match=r"format aepipe.detector/1, where this aepipe reads aepipe.detector/2 or"
    ):
        OnnxDetector(tmp_path / "oldest.onnx")


def flipped_weight(source, out) -> None:
    """A copy of the detector `source` with one byte of its first convolution's weights flipped, its
    metadata untouched: as a cache object silently corrupted on disk."""
    import onnx

    model = onnx.load(source)
    first_conv = next(node for node in model.graph.node if node.op_type == "Conv")
    weights = next(init for init in model.graph.initializer if init.name == first_conv.input[1])
    content = bytearray(weights.raw_data)
    content[3] ^= 0x40  # the first weight's sign-and-exponent byte (float32, little-endian)
    weights.raw_data = bytes(content)
    onnx.save(model, out)


def test_a_corrupt_detector_is_refused_by_every_loader_naming_it_and_the_recovery(
    project, detector, tmp_path, capsys
):
    import onnxruntime

    from aepipe.cli import main

    corrupt = tmp_path / "detector.onnx"
    flipped_weight(project / "models" / "detector.onnx", corrupt)
    images = validation_images(project)[:64]
    unchecked = onnxruntime.InferenceSession(str(corrupt), providers=["CPUExecutionProvider"])
    scores = unchecked.run(None, {"images": images})[0]
    assert not np.array_equal(scores, detector(images)[0]), "the flipped byte changes the scores"
    with pytest.raises(AepipeError, match=r"detector.onnx: corrupt: .*dvc checkout --relink"):
        OnnxDetector(corrupt)
    np.save(tmp_path / "digits.npy", images[:, 0])
    for command in ("score", "calibrate"):
        calibrate = ["--false-alarms", "0.1", "--out", str(tmp_path / "c.onnx")]
        with pytest.raises(SystemExit) as stopped:
            main(
                [command, str(tmp_path / "digits.npy"), "--onnx", str(corrupt)]
                + (calibrate if command == "calibrate" else [])
            )
        assert stopped.value.code == 2 and "corrupt" in capsys.readouterr().err, command
    assert not (tmp_path / "c.onnx").exists()


def test_a_detector_without_a_checksum_loads_with_one_line_of_warning(
    project, detector, tmp_path, capsys
):
    import onnx

    from aepipe.deploy.onnx_detector import CHECKSUM, graph_sha256

    graph = onnx.load(project / "models" / "detector.onnx")
    properties = {prop.key: prop.value for prop in graph.metadata_props}
    assert properties[CHECKSUM] == graph_sha256(graph)
    del properties[CHECKSUM]
    onnx.helper.set_model_props(graph, properties)
    onnx.save(graph, tmp_path / "older.onnx")
    capsys.readouterr()
    older = OnnxDetector(tmp_path / "older.onnx")
    warned = capsys.readouterr().err.splitlines()
    assert len(warned) == 1 and warned[0].startswith("warning:") and "no checksum" in warned[0]
    images = validation_images(project)[:8]
    assert np.array_equal(older(images)[0], detector(images)[0])
