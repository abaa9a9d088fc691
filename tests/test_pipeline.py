"""The real pipeline: `dvc` commands on a git copy of this project, and stage scripts run as
processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aepipe.anomaly.detection import calibration_split
from aepipe.atomic import file_sha256
from aepipe.data.dataset import CLASSES_FILE, load_classes
from aepipe.data.mnist import DATASETS
from aepipe.model.autoencoder import load_model
from conftest import REPO
from dvc_project import (
    FIGURES,
    PNG_SIGNATURE,
    SMALL,
    UP_TO_DATE,
    copy_project,
    project_env,
    ran_stages,
    run,
)


def test_pipeline_outputs_are_complete_and_sane(project):
    assert sorted(path.name for path in (project / "data" / "raw").iterdir()) == sorted(
        [*DATASETS["mnist"].sha256, CLASSES_FILE]
    )
    train = json.loads((project / "reports" / "train.json").read_text())
    assert train["epochs"] == 2 and train["train_images"] == 2048 and train["val_images"] == 512
    assert train["final_val_loss"] < train["initial_val_loss"], (
        "training did not beat the untrained model"
    )
    assert (
        0 < train["final_val_loss"] < 0.1
        and train["images_per_second"] > 0
        and train["device"] == "cpu"
    )

    live = project / "dvclive"
    val_mse = pd.read_csv(live / "plots" / "metrics" / "val_mse.tsv", sep="\t")
    assert val_mse["step"].tolist() == [1, 2], "one row per epoch"
    assert val_mse["val_mse"].iloc[-1] == pytest.approx(train["final_val_loss"])
    steps = json.loads((live / "plots" / "custom" / "batch_mse.json").read_text())
    assert [step["step"] for step in steps] == list(range(1, 65)) and {
        step["epoch"] for step in steps
    } == {1, 2}
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == 2 and summary["val_mse"] == train["final_val_loss"]

    scores = project / "data" / "scores"
    assert len(pd.read_csv(scores / "train_batches.csv")) == 2048 // 64
    val_batches = pd.read_csv(scores / "val_batches.csv")
    assert len(val_batches) == 512 // 64
    val_images = pd.read_csv(scores / "val_images.csv")
    assert len(val_images) == 512 and val_images["label"].head(5).tolist() == [7, 2, 1, 0, 4]
    assert val_batches["loss"].mean() == pytest.approx(val_images["loss"].mean(), rel=1e-5)
    assert val_images["loss"].mean() == pytest.approx(train["final_val_loss"], rel=1e-4)

    threshold = json.loads((project / "reports" / "threshold.json").read_text())
    per_batch, per_image = threshold["per_batch"], threshold["per_image"]
    assert per_batch["val"]["count"] == 8 and per_batch["k"] == 1.0
    assert per_batch["threshold"] == pytest.approx(
        per_batch["val"]["mean"] + per_batch["val"]["std"]
    )
    assert per_image["calibration"]["count"] == 256  # half of the 512 normal validation images
    calibration, test = calibration_split(512, 0.5, seed=42)
    assert np.flatnonzero(val_images["role"] == "calibration").tolist() == calibration.tolist()
    assert np.flatnonzero(val_images["role"] == "test").tolist() == test.tolist()
    assert per_image["score"] == "combined"
    assert per_image["threshold"] == pytest.approx(
        np.quantile(val_images["score"].to_numpy()[calibration], 0.99), rel=1e-6
    )
    fitted = json.loads((project / "models" / "anomaly_score.json").read_text())
    assert fitted["method"] == "combined" and fitted["model_sha256"] == file_sha256(
        project / "models" / "model.pt"
    )
    assert threshold["score_sha256"] == file_sha256(project / "models" / "anomaly_score.json")

    assert load_model(project / "models" / "model.pt").latent_dim == 20


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("figure", FIGURES)
def test_every_figure_is_a_png_of_sensible_size(project, figure):
    width, height = png_size(project / "plots" / f"{figure}.png")
    assert 300 <= width <= 3000 and 150 <= height <= 3000, (width, height)


def test_latent_outputs_and_their_metrics(project):
    saved = np.load(project / "data" / "latents.npz")
    assert saved["latents"].shape == (512, 20) and saved["labels"][:3].tolist() == [7, 2, 1]
    assert saved["train_latents"].shape == (2048, 20) and saved["train_labels"][:3].tolist() == [
        5,
        0,
        4,
    ]
    tsne = pd.read_csv(project / "data" / "tsne.csv")
    assert list(tsne.columns) == ["x", "y", "label"] and len(tsne) == 512
    tsne_metrics = json.loads((project / "reports" / "tsne.json").read_text())
    assert tsne_metrics["points"] == 512 and tsne_metrics["kl_divergence"] > 0
    assert (
        0.1 < tsne_metrics["knn_accuracy_2d"] <= 1
        and 0.1 < tsne_metrics["knn_accuracy_latent"] <= 1
    )
    denoise = json.loads((project / "reports" / "denoise.json").read_text())
    levels = [denoise[f"noise_std_{level}"] for level in ("0_1", "0_2", "0_3", "0_5")]
    noisy_db = [level["psnr_noisy_db"] for level in levels]
    assert noisy_db == sorted(noisy_db, reverse=True), "more noise must mean lower PSNR"
    assert 5 < denoise["clean"]["psnr_reconstructed_db"] < 40


def test_the_judge_and_what_it_says_of_samples_reconstructions_and_denoising(project):
    judge = json.loads((project / "reports" / "judge.json").read_text())
    # judged on the whole test set
    assert judge["train_images"] == 2048 and judge["val_images"] == 10_000
    accuracy = json.loads((project / "metrics" / "judge.json").read_text())["judge_accuracy"]
    # one epoch on 2,048 images; chance is 0.1
    assert accuracy == judge["accuracy_per_epoch"][-1] > 0.85

    samples = np.load(project / "data" / "samples.npz")
    assert samples["images"].shape == (500, 28, 28) and samples["images"].dtype == np.uint8
    assert samples["latents"].shape == (500, 20) and samples["judge_labels"].shape == (500,)
    report = json.loads((project / "reports" / "samples.json").read_text())
    shares = np.bincount(samples["judge_labels"], minlength=10) / 500
    assert list(report["samples"]["class_shares"].values()) == pytest.approx(shares.tolist())
    assert report["samples"]["judge_confidence"] == pytest.approx(
        float(samples["judge_confidence"].mean())
    )
    distances = report["frechet_distance"]
    # halves of 512 validation images
    assert distances["reference_images"] == distances["compared_images"] == 256
    # Two halves of real images are closer than anything the barely trained autoencoder makes.
    assert (
        0 < distances["real"] < distances["reconstructions"]
        and distances["real"] < distances["samples"]
    )
    assert set(report["prototypes"]) == set("0123456789")
    reconstructions = report["reconstructions"]
    assert (
        reconstructions["images"] == 512
        and reconstructions["judge_accuracy"] < reconstructions["judge_accuracy_originals"]
    )

    metrics = json.loads((project / "metrics" / "samples.json").read_text())
    assert metrics == {
        "fd_samples": distances["samples"],
        "fd_recon": distances["reconstructions"],
        "fd_real": distances["real"],
        "sample_conf": report["samples"]["judge_confidence"],
        "sample_min_share": min(shares),
        "recon_acc": reconstructions["judge_accuracy"],
    }

    denoise = json.loads((project / "reports" / "denoise.json").read_text())
    assert denoise["clean"]["judge_accuracy"] == reconstructions["judge_accuracy_originals"]
    noisy = [
        denoise[f"noise_std_{level}"]["judge_accuracy_noisy"]
        for level in ("0_1", "0_2", "0_3", "0_5")
    ]
    assert noisy == sorted(noisy, reverse=True) and noisy[-1] < denoise["clean"]["judge_accuracy"]
    heaviest = denoise["noise_std_0_5"]
    assert json.loads((project / "metrics" / "denoise.json").read_text()) == pytest.approx(
        {
            "psnr_gain": heaviest["psnr_reconstructed_db"] - heaviest["psnr_noisy_db"],
            "denoised_ssim": heaviest["ssim_reconstructed"],
            "noisy_acc": heaviest["judge_accuracy_noisy"],
            "denoised_acc": heaviest["judge_accuracy_reconstructed"],
        }
    )


def test_a_second_repro_has_nothing_to_do(project, mnist_dir):
    assert run(["dvc", "status"], project, None).stdout == UP_TO_DATE
    assert ran_stages(run(["dvc", "repro"], project, str(mnist_dir)).stdout) == ["check_params"]


def test_dvc_resumes_a_killed_training_run(own_project, mnist_dir):
    project = own_project
    longer = [*SMALL, "-S", "train.epochs=4"]  # the small run's data: only train is to run
    # the stages up to train: the ones a kill can leave undone
    command = ["dvc", "exp", "run", *longer, "train"]
    process = subprocess.Popen(
        command,
        cwd=project,
        env=project_env(str(mnist_dir)),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = project / ".checkpoints" / "train.pt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists():
        assert process.poll() is None and time.monotonic() < deadline, (
            "training ended before it could be killed"
        )
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # dvc and the stage it runs
    process.wait()
    assert (
        "Data and pipelines are up to date."
        not in run(["dvc", "status", "train"], project, None).stdout
    )

    result = run(command, project, str(mnist_dir))
    assert "resuming from the checkpoint after epoch" in result.stdout
    assert ran_stages(result.stdout)[:2] == ["check_params", "train"], (
        "the download should have been kept"
    )
    assert not checkpoint.exists()
    assert json.loads((project / "reports" / "train.json").read_text())["epochs"] == 4
    assert (
        "Data and pipelines are up to date."
        in run(["dvc", "status", "train"], project, None).stdout
    )


HEADLINE = [
    "step",
    "val_mse",
    "train_seconds",
    "threshold",
    "fp_rate",
    "fp_target",
    "fp_rate_low",
    "fp_rate_high",
    "calibration_holds",
    "auc_rotation",
    "auc_patch",
    "auc_blank",
    "auc_saturate",
    "auc_patch_pixels",
    "tsne_knn10",
    "psnr_gain",
    "denoised_ssim",
    "noisy_acc",
    "denoised_acc",
    "judge_accuracy",
    "fd_samples",
    "fd_recon",
    "fd_real",
    "sample_conf",
    "sample_min_share",
    "recon_acc",
    "export_max_rel_diff",
    "export_flags_differ",
]


def test_metrics_are_the_headline_numbers_and_fit_exp_show(project):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project, None).stdout)
    metrics = shown[""]["data"]  # "" is the workspace
    names = [name for file in metrics.values() for name in file["data"]]
    assert sorted(names) == sorted(HEADLINE), (
        "every metric name once, in no more files than declared"
    )
    assert metrics["dvclive/metrics.json"]["data"]["step"] == 2
    reports = project / "reports"
    assert (
        metrics["metrics/threshold.json"]["data"]["threshold"]
        == json.loads((reports / "threshold.json").read_text())["per_image"]["threshold"]
    )
    anomaly = json.loads((reports / "anomaly.json").read_text())
    assert metrics["metrics/anomaly.json"]["data"]["auc_patch"] == anomaly["patch"]["roc_auc"]
    denoise = json.loads((reports / "denoise.json").read_text())["noise_std_0_5"]
    assert metrics["metrics/denoise.json"]["data"]["psnr_gain"] == pytest.approx(
        denoise["psnr_reconstructed_db"] - denoise["psnr_noisy_db"]
    )

    # README's way
    table = run(["make", "--no-print-directory", "compare"], project, None, COLUMNS="200").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line)
    assert all(name in header.split() for name in HEADLINE), header


def test_publish_gives_git_the_numbers_curves_and_reports_of_the_cached_stages(project):
    published = {
        f"data/metrics/{path.name}": f"metrics/{path.name}"
        for path in (project / "data" / "metrics").iterdir()
        if path.name != "train.json" and not path.name.startswith(".")
    }
    published["data/metrics/train.json"] = "dvclive/metrics.json"
    published.update(
        {
            f"reports/{path.name}": f"results/{path.name}"
            for path in (project / "reports").glob("*.json")
        }
    )
    assert len(published) == 8 + 8
    kinds = ["blank", "gaussian_noise", "invert", "patch", "rotation", "saturate"]
    for curve in ("roc", "pr"):
        assert sorted(path.stem for path in (project / "plots" / curve).iterdir()) == kinds
        published.update(
            {f"data/curves/{curve}/{kind}.csv": f"plots/{curve}/{kind}.csv" for kind in kinds}
        )
    for source, copy in published.items():
        assert (project / copy).read_bytes() == (project / source).read_bytes(), copy
    ignored = run(["git", "check-ignore", *published.values()], project, None, check=False)
    assert ignored.returncode == 1 and not ignored.stdout, f"git ignores {ignored.stdout}"
    cached = run(["git", "check-ignore", *published], project, None).stdout.split()
    assert sorted(cached) == sorted(published), (
        "the stages' own files are DVC's (cached, git-ignored)"
    )

    roc, anomaly = (
        pd.read_csv(project / "plots" / "roc" / "patch.csv"),
        json.loads((project / "reports" / "anomaly.json").read_text()),
    )
    assert len(roc) == 101 and roc["fpr"].iloc[-1] == roc["tpr"].iloc[-1] == 1
    # The staircase sampled on the grid lies under the exact curve: its area is the ROC AUC, a
    # little less.
    assert (
        anomaly["patch"]["roc_auc"] - 0.02
        < np.trapezoid(roc["tpr"], roc["fpr"])
        <= anomaly["patch"]["roc_auc"]
    )


def test_anomaly_evaluation_covers_every_corruption(project):
    anomaly = json.loads((project / "reports" / "anomaly.json").read_text())
    per_image = json.loads((project / "reports" / "threshold.json").read_text())["per_image"]
    assert anomaly["threshold"] == per_image["threshold"]
    # all ten digits are normal
    assert anomaly["normal_test_images"] == 256 and "held_out_digits" not in anomaly
    for corruption in ("gaussian_noise", "rotation", "patch", "invert", "blank", "saturate"):
        result = anomaly[corruption]
        assert result["anomalies"] == 256
        assert 0 <= result["roc_auc"] <= 1 and 0 <= result["precision"] <= 1
    # an inverted digit is nothing like the training data
    assert anomaly["invert"]["roc_auc"] > 0.95
    assert anomaly["blank"]["roc_auc"] > 0.99, "the default score must flag blank images"
    # Even a barely trained model's anomaly map is brightest where the white square is.
    assert 0.8 < anomaly["localisation"]["patch_pixel_roc_auc"] <= 1
    top = np.load(project / "data" / "scores" / "most_anomalous.npz")
    scores = pd.read_csv(project / "data" / "scores" / "val_images.csv")["score"].to_numpy()
    assert top["index"].tolist() == np.argsort(scores, kind="stable")[::-1][:16].tolist()
    assert (
        top["images"].shape == top["maps"].shape == (16, 28, 28)
        and 0 <= top["maps"].min() <= top["maps"].max() <= 1
    )


def evaluate_with_threshold(project: Path, threshold: float) -> tuple[str, dict, dict]:
    """The evaluate stage run as a process on the small run, its per-image threshold set to
    `threshold`."""
    path = project / "reports" / "threshold.json"
    report = json.loads(path.read_text())
    report["per_image"]["threshold"] = threshold
    path.write_text(json.dumps(report))
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "evaluate.py")],
        cwd=project,
        capture_output=True,
        text=True,
        env=project_env(None, PYTHONPATH=str(REPO / "src")),
        check=True,
    )
    return (
        result.stdout,
        json.loads((project / "data" / "metrics" / "anomaly.json").read_text()),
        json.loads((project / "reports" / "anomaly.json").read_text())["calibration"],
    )


def test_evaluate_says_whether_the_threshold_keeps_its_false_alarm_promise(own_project):
    images = pd.read_csv(own_project / "data" / "scores" / "val_images.csv")
    normal = np.sort(images.loc[images["role"] == "test", "score"].to_numpy())
    # Two of the 256 normal test images above the threshold: 0.8 %, the 1 % target inside its
    # interval.
    output, metrics, calibration = evaluate_with_threshold(own_project, float(normal[-3]))
    assert (
        metrics["calibration_holds"] is True
        and metrics["fp_target"] == 0.01
        and "does not hold" not in output
    )
    assert calibration["false_alarms"] == 2 and calibration["normal_images"] == 256
    assert metrics["fp_rate_low"] < 0.01 < metrics["fp_rate_high"] and metrics["fp_rate"] == 2 / 256

    # A line whose good parts drifted: a tenth of them flagged.
    output, metrics, calibration = evaluate_with_threshold(own_project, float(normal[-27]))
    assert (
        metrics["calibration_holds"] is False
        and calibration["false_alarms"] == 26
        and metrics["fp_rate_low"] > 0.01
    )
    assert "calibration does not hold: 10.2% of 256 normal test images flagged" in output


def test_each_param_reruns_only_the_stages_that_read_it(own_project, mnist_dir):
    model = (own_project / "models" / "model.pt").read_bytes()
    result = run(
        ["dvc", "exp", "run", *SMALL, "-S", "anomaly.score=reconstruction"],
        own_project,
        str(mnist_dir),
    )
    assert ran_stages(result.stdout) == [
        "check_params",
        "score",
        "threshold",
        "evaluate",
        "export",
        "publish",
    ]
    assert (own_project / "models" / "model.pt").read_bytes() == model
    images = pd.read_csv(own_project / "data" / "scores" / "val_images.csv")
    assert np.array_equal(images["score"].astype(np.float32), images["loss"].astype(np.float32)), (
        "the reconstruction score is the reconstruction error"
    )
    # A blank frame reconstructs better than most digits: the error alone ranks it below them, and
    # only the dead-frame check flags it (the combined score's too-little-ink term does too).
    blank = pd.read_csv(own_project / "data" / "scores" / "corrupted_images.csv")[
        ["blank", "blank.dead_frame"]
    ]
    assert (
        blank["blank"].max() < images.loc[images["role"] == "test", "score"].median()
        and blank["blank.dead_frame"].all()
    )
    assert (
        json.loads((own_project / "reports" / "anomaly.json").read_text())["blank"]["roc_auc"]
        == 1.0
    )
    # a score with no latent term
    export = json.loads((own_project / "reports" / "export.json").read_text())
    assert export["export_max_rel_diff"] <= 1e-5 and export["export_flags_differ"] == 0, export
    # Back to the default score with another threshold.k and t-SNE perplexity: score comes back from
    # the run-cache, and only the stages that read those params (and what follows them) run.
    tsne = json.loads((own_project / "reports" / "tsne.json").read_text())
    back = run(
        [
            "dvc",
            "exp",
            "run",
            *SMALL,
            "-S",
            "anomaly.score=auto",
            "-S",
            "threshold.k=2",
            "-S",
            "tsne.perplexity=10",
        ],
        own_project,
        str(mnist_dir),
    )
    assert sorted(ran_stages(back.stdout)) == [
        "check_params",
        "evaluate",
        "export",
        "publish",
        "threshold",
        "tsne",
    ]
    assert (
        json.loads((own_project / "reports" / "tsne.json").read_text())["kl_divergence"]
        != tsne["kl_divergence"]
    )
    assert (
        pd.read_csv(own_project / "data" / "scores" / "val_images.csv")["score"].tolist()
        != images["score"].tolist()
    )
    per_batch = json.loads((own_project / "reports" / "threshold.json").read_text())["per_batch"]
    assert per_batch["threshold"] == pytest.approx(
        per_batch["val"]["mean"] + 2 * per_batch["val"]["std"]
    )


@pytest.mark.parametrize("stage", ["threshold", "evaluate"])
def test_the_stages_of_a_threshold_experiment_never_import_torch(project, stage):
    # Importing torch costs each stage about two seconds; the score stage scored every image for
    # them.
    probe = (
        f"import runpy, sys; runpy.run_path('stages/{stage}.py', run_name='__main__'); "
        "print(sorted(sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project,
        env=project_env(None, PYTHONPATH="src:stages"),
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = result.stdout.split("\n")[-2]
    assert "'aepipe.figures.plots'" in loaded and "'torch'" not in loaded


def last_good_run(project: Path) -> dict[str, bytes]:
    """Every output a user keeps from a run: the models, metrics, reports, latents, samples and
    figures."""
    paths = [
        *(project / "models").glob("*.pt"),
        project / "models" / "detector.onnx",
        project / "data" / "latents.npz",
        project / "data" / "samples.npz",
        project / "dvclive" / "metrics.json",
        *(project / "metrics").glob("*.json"),
        *(project / "reports").glob("*.json"),
        *(project / "plots").glob("*.png"),
    ]
    assert len(paths) == 3 + 2 + 1 + 7 + 8 + len(FIGURES)
    return {str(path.relative_to(project)): path.read_bytes() for path in paths}


def test_a_bad_param_stops_the_pipeline_naming_the_key_and_keeps_the_last_run(
    own_project, mnist_dir
):
    """One case through DVC (check_params runs first and alone); test_params has every rule's
    message."""
    before = last_good_run(own_project)
    message = "interpolate.end = 512: expected the index of a validation image, 0 to 511"
    result = run(
        ["dvc", "exp", "run", *SMALL, "-S", "interpolate.end=512"],
        own_project,
        str(mnist_dir),
        check=False,
    )
    assert result.returncode != 0
    assert f"error: params.yaml: {message}" in result.stderr + result.stdout
    assert ran_stages(result.stdout) == ["check_params"]
    assert last_good_run(own_project) == before


@pytest.mark.pipeline
def test_the_refusal_says_how_to_recover_and_that_works_every_time(tmp_path, mnist_dir):
    project = copy_project(tmp_path)
    committed = (project / "params.yaml").read_bytes()
    for attempt in range(2):  # and again, once `git status` has refreshed the index
        result = run(
            ["dvc", "exp", "run", "-S", "train.device=tpu"], project, str(mnist_dir), check=False
        )
        assert (
            result.returncode != 0
            and "train.device = 'tpu': input should be 'auto', 'cpu' or 'cuda'" in result.stderr
        )
        assert "tpu" in (project / "params.yaml").read_text(), (
            "DVC kept the refused value (as the message says)"
        )
        # as a user would look, which is when git's index goes stale
        run(["git", "status"], project, None)
        recovery = "make restore-params"
        assert recovery in result.stderr
        run(recovery.split(), project, None)
        assert (project / "params.yaml").read_bytes() == committed, f"attempt {attempt + 1}"
        assert run(["git", "status", "--porcelain", "params.yaml"], project, None).stdout == ""


def test_a_typo_in_params_yaml_stops_repro_and_keeps_the_last_run(project, mnist_dir):
    before = last_good_run(project)
    params_file = project / "params.yaml"
    good = params_file.read_text()
    params_file.write_text(good.replace("latent_dim:", "latnet_dim:"))
    try:
        result = run(["dvc", "repro"], project, str(mnist_dir), check=False)
    finally:
        params_file.write_text(good)
    assert result.returncode != 0
    assert (
        "error: params.yaml: train.latnet_dim: unknown key; allowed in train: latent_dim"
        in result.stderr
    )
    assert last_good_run(project) == before


# --- the download stage as a process, against real HTTP servers
# -----------------------------------------


def download_stage(
    workdir: Path, mirrors: list[str], env_mirror: str | None
) -> subprocess.CompletedProcess:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"].update(
        mirrors={**params["download"]["mirrors"], "mnist": mirrors}, timeout_s=5
    )
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return run(
        [sys.executable, str(REPO / "stages" / "download.py")], workdir, env_mirror, check=False
    )


def test_download_stage_uses_the_env_mirror_first(mnist_dir, serve, tmp_path):
    result = download_stage(tmp_path, ["http://127.0.0.1:9/"], env_mirror=serve(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "data" / "raw").iterdir()) == sorted(
        [*DATASETS["mnist"].sha256, CLASSES_FILE]
    )


def test_download_stage_with_a_corrupted_mirror_fails_cleanly(mnist_dir, serve, tmp_path):
    corrupted = tmp_path / "mirror"
    corrupted.mkdir()
    for path in mnist_dir.glob("*.gz"):
        data = path.read_bytes()
        (corrupted / path.name).write_bytes(
            data[: len(data) - 1000] if "t10k-images" in path.name else data
        )
    work = tmp_path / "work"
    work.mkdir()
    url = serve(corrupted)
    result = download_stage(work, [url], env_mirror=None)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: could not get a valid t10k-images-idx3-ubyte.gz from any mirror"
    )
    assert f"{url}t10k-images-idx3-ubyte.gz: not a complete gzip file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (work / "data").exists(), "something was left in data/"


def test_a_one_class_experiment_keeps_held_out_digits_out_and_never_retrains_the_judge(
    own_project, mnist_dir
):
    from aepipe.data.dataset import load_split

    # Enough steps (~1,350 ones, 5 epochs) for the model to learn what a 1 looks like.
    one_class = [
        "-S",
        "data.normal_classes=[1]",
        "-S",
        "data.train_size=12000",
        "-S",
        "train.epochs=5",
    ]
    judge = (own_project / "models" / "judge.pt").read_bytes()
    # Up to evaluate and to sample, the stage that reads both models: the judge is upstream of it,
    # the autoencoder too.
    result = run(
        ["dvc", "exp", "run", *SMALL, *one_class, "evaluate", "sample"], own_project, str(mnist_dir)
    )
    assert {"train", "sample"} <= set(ran_stages(result.stdout)) and "judge" not in ran_stages(
        result.stdout
    ), "an autoencoder experiment retrained the judge"
    assert (own_project / "models" / "judge.pt").read_bytes() == judge
    raw = own_project / "data" / "raw"
    train_labels, val_labels = (
        load_split(raw, "train", 12000).labels,
        load_split(raw, "val", 512).labels,
    )
    train = json.loads((own_project / "reports" / "train.json").read_text())
    assert train["train_images"] == int((train_labels == 1).sum()) and train["val_images"] == int(
        (val_labels == 1).sum()
    )
    images = pd.read_csv(own_project / "data" / "scores" / "val_images.csv")
    assert images["normal"].tolist() == (val_labels == 1).tolist()
    per_image = json.loads((own_project / "reports" / "threshold.json").read_text())["per_image"]
    anomaly = json.loads((own_project / "reports" / "anomaly.json").read_text())
    normal_count = int((val_labels == 1).sum())
    assert per_image["calibration"]["count"] + anomaly["normal_test_images"] == normal_count
    held_out = anomaly["held_out_digits"]
    assert held_out["anomalies"] == 512 - normal_count
    assert held_out["roc_auc"] > 0.8  # a model of ones reconstructs other digits badly


@pytest.mark.pipeline
def test_fashion_mnist_comes_from_its_own_mirror_with_its_class_names(
    tmp_path, fashion_mnist_dir, serve
):
    """The download through DVC; what follows it reads the same files as MNIST's (the one-class
    experiment above runs it)."""
    from aepipe.data.dataset import load_split

    project = copy_project(tmp_path)
    # Only the Fashion-MNIST variable names a mirror: the MNIST one is unset, its params mirrors
    # unreachable.
    result = run(
        [
            "dvc",
            "exp",
            "run",
            *SMALL,
            "-S",
            "data.dataset=fashion-mnist",
            "-S",
            "data.normal_classes=[7]",
            "download",
        ],
        project,
        None,
        AEPIPE_FASHION_MNIST_MIRROR=serve(fashion_mnist_dir),
    )
    assert ran_stages(result.stdout) == ["check_params", "download"]
    raw = project / "data" / "raw"
    assert {
        path.name: file_sha256(path) for path in raw.iterdir() if path.name != CLASSES_FILE
    } == DATASETS["fashion-mnist"].sha256
    assert load_classes(raw).names[7] == "Sneaker"
    val = load_split(raw, "val", 512)
    assert val.images.shape == (512, 28, 28) and np.bincount(val.labels, minlength=10).min() > 30, (
        "all ten classes"
    )


def test_an_edit_to_a_library_module_changes_only_the_stages_that_import_it(project):
    """One module through DVC's status; test_stage_deps proves every stage's deps are its
    imports."""
    edited, stages = "src/aepipe/anomaly/scores.py", {"score", "export"}
    source = (project / edited).read_text()
    (project / edited).write_text(source + "\n# an edit\n")
    try:
        status = json.loads(run(["dvc", "status", "--json"], project, None).stdout)
    finally:
        (project / edited).write_text(source)
    # Other tests leave other changes in this workspace: count the stages this edit changes.
    changed_by_edit = {
        name.split(":")[-1]
        for name, changes in status.items()
        if any(
            edited in change.get("changed deps", {})
            for change in changes
            if isinstance(change, dict)
        )
    }
    assert changed_by_edit == stages
