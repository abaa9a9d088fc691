"""The real pipeline: `dvc` commands on a git copy of this project, and stage scripts run as processes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aepipe.mnist import SHA256
from aepipe.model import load_model
from conftest import REPO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = ["-S", "data.train_size=2048", "-S", "data.val_size=512", "-S", "train.epochs=2"]


def project_env(mirror: str | None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # stages run `python`
    env.pop("AEPIPE_MNIST_MIRROR", None)
    if mirror:
        env["AEPIPE_MNIST_MIRROR"] = mirror
    env.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    return env


def copy_project(dest: Path) -> Path:
    """A fresh git repository holding this project's files (tracked and not ignored), committed."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=dest, check=True, env=project_env(None))
    return dest


def run(args: list[str], cwd: Path, mirror: str | None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=project_env(mirror), capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


@pytest.fixture(scope="module")
def project(tmp_path_factory, mnist_dir) -> Path:
    """The project after `dvc exp run` of the whole pipeline with small params."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    result = run(["dvc", "exp", "run", *SMALL], project, str(mnist_dir))
    assert ran_stages(result.stdout) == ["download", "train", "losses", "threshold"]
    return project


def test_pipeline_outputs_are_complete_and_sane(project):
    assert sorted(path.name for path in (project / "data" / "raw").iterdir()) == sorted(SHA256)
    train = json.loads((project / "metrics" / "train.json").read_text())
    assert train["epochs"] == 2 and train["train_images"] == 2048 and train["val_images"] == 512
    assert train["final_val_loss"] < train["initial_val_loss"], "training did not beat the untrained model"
    assert 0 < train["final_val_loss"] < 0.1 and train["images_per_second"] > 0 and train["device"] == "cpu"

    epochs = pd.read_csv(project / "data" / "train" / "epoch_losses.csv")
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["val_loss"].iloc[-1] == pytest.approx(train["final_val_loss"])
    batches = pd.read_csv(project / "data" / "train" / "batch_losses.csv")
    assert len(batches) == 2 * 32 and batches["step"].tolist() == list(range(1, 65))

    losses = project / "data" / "losses"
    assert len(pd.read_csv(losses / "train_batches.csv")) == 2048 // 64
    val_batches = pd.read_csv(losses / "val_batches.csv")
    assert len(val_batches) == 512 // 64
    val_images = pd.read_csv(losses / "val_images.csv")
    assert len(val_images) == 512 and val_images["label"].head(5).tolist() == [7, 2, 1, 0, 4]
    assert val_batches["loss"].mean() == pytest.approx(val_images["loss"].mean(), rel=1e-5)
    assert val_images["loss"].mean() == pytest.approx(train["final_val_loss"], rel=1e-4)

    threshold = json.loads((project / "metrics" / "threshold.json").read_text())
    assert threshold["val"]["count"] == 8 and threshold["k"] == 1.0
    assert threshold["threshold"] == pytest.approx(threshold["val"]["mean"] + threshold["val"]["std"])

    histogram = (project / "plots" / "loss_histograms.png").read_bytes()
    assert histogram.startswith(PNG_SIGNATURE) and len(histogram) > 10_000
    assert load_model(project / "models" / "model.pt").latent_dim == 20


def test_a_second_repro_has_nothing_to_do(project, mnist_dir):
    assert "Data and pipelines are up to date." in run(["dvc", "status"], project, None).stdout
    assert ran_stages(run(["dvc", "repro"], project, str(mnist_dir)).stdout) == []


def test_metrics_are_tracked_by_dvc(project):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project, None).stdout)
    metrics = shown[""]["data"]  # "" is the workspace
    assert metrics["metrics/train.json"]["data"]["epochs"] == 2
    assert "threshold" in metrics["metrics/threshold.json"]["data"]


def test_changing_only_the_threshold_param_reruns_only_threshold(project, mnist_dir):
    result = run(["dvc", "exp", "run", *SMALL, "-S", "threshold.k=2"], project, str(mnist_dir))
    assert ran_stages(result.stdout) == ["threshold"]
    threshold = json.loads((project / "metrics" / "threshold.json").read_text())
    assert threshold["threshold"] == pytest.approx(threshold["val"]["mean"] + 2 * threshold["val"]["std"])


def test_a_bad_param_stops_the_pipeline_naming_the_key(project, mnist_dir):
    result = run(["dvc", "exp", "run", *SMALL, "-S", "train.batch_size=0"], project, str(mnist_dir), check=False)
    assert result.returncode != 0
    assert "error: params.yaml: train.batch_size = 0: expected an integer >= 1" in result.stderr + result.stdout


# --- the download stage as a process, against real HTTP servers -----------------------------------------


def download_stage(workdir: Path, mirrors: list[str], env_mirror: str | None) -> subprocess.CompletedProcess:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"].update(mirrors=mirrors, timeout_s=5)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return run([sys.executable, str(REPO / "stages" / "download.py")], workdir, env_mirror, check=False)


def test_download_stage_uses_the_env_mirror_first(mnist_dir, serve, tmp_path):
    result = download_stage(tmp_path, ["http://127.0.0.1:9/"], env_mirror=serve(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "data" / "raw").iterdir()) == sorted(SHA256)


def test_download_stage_with_a_corrupted_mirror_fails_cleanly(mnist_dir, serve, tmp_path):
    corrupted = tmp_path / "mirror"
    corrupted.mkdir()
    for path in mnist_dir.glob("*.gz"):
        data = path.read_bytes()
        (corrupted / path.name).write_bytes(data[: len(data) - 1000] if "t10k-images" in path.name else data)
    work = tmp_path / "work"
    work.mkdir()
    url = serve(corrupted)
    result = download_stage(work, [url], env_mirror=None)
    assert result.returncode == 2
    assert result.stderr.startswith("error: could not get a valid t10k-images-idx3-ubyte.gz from any mirror")
    assert f"{url}t10k-images-idx3-ubyte.gz: not a complete gzip file" in result.stderr
    assert "Traceback" not in result.stderr
    assert list((work / "data").iterdir()) == [], "something was left in data/"
