"""Failure behaviour: killed training resumes exactly, stale checkpoints are ignored, slow or broken
mirrors are skipped within the timeout."""

import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from aepipe.mnist import SHA256, DownloadError, download_mnist
from aepipe.training import to_tensor, train
from conftest import REPO

SMALL_TRAINING = {"data": {"train_size": 8192, "val_size": 512}, "train": {"epochs": 5},
                  "interpolate": {"start": 0, "end": 1}, "denoise": {"index": 0}}
TIMING_METRICS = {"train_seconds", "images_per_second"}


@pytest.fixture(scope="module")
def raw_dir(mnist_dir, tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("mnist") / "raw"
    download_mnist(raw, [str(mnist_dir)], timeout_s=5)
    return raw


def stage_workdir(path: Path, raw_dir: Path) -> Path:
    """A directory laid out as the project for the train stage: params.yaml and data/raw."""
    (path / "data").mkdir(parents=True)
    (path / "data" / "raw").symlink_to(raw_dir)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in SMALL_TRAINING.items():
        params[section].update(values)
    params["train"]["device"] = "cpu"
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    return path


def train_stage(workdir: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "stages" / "train.py")], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finished(workdir: Path) -> str:
    process = train_stage(workdir)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def outputs(workdir: Path) -> dict:
    metrics = json.loads((workdir / "metrics" / "train.json").read_text())
    return {
        "metrics": {key: value for key, value in metrics.items() if key not in TIMING_METRICS},
        "model": (workdir / "models" / "model.pt").read_bytes(),
        "batch_losses": (workdir / "data" / "train" / "batch_losses.csv").read_text(),
        "epoch_losses": (workdir / "data" / "train" / "epoch_losses.csv").read_text(),
    }


def test_killed_training_resumes_and_ends_exactly_as_an_uninterrupted_run(tmp_path, raw_dir):
    uninterrupted = stage_workdir(tmp_path / "uninterrupted", raw_dir)
    finished(uninterrupted)

    killed = stage_workdir(tmp_path / "killed", raw_dir)
    checkpoint = killed / ".checkpoints" / "train.pt"
    process = train_stage(killed)
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "models" / "model.pt").exists()
    saved_epoch = torch.load(checkpoint, weights_only=True)["history"]["epoch"]
    assert 1 <= saved_epoch < 5

    output = finished(killed)
    assert f"resuming from the checkpoint after epoch {saved_epoch}/5" in output
    assert f"epoch {saved_epoch}/5:" not in output, "a completed epoch was trained again"
    assert not checkpoint.exists(), "the checkpoint outlived the completed stage"
    assert outputs(killed) == outputs(uninterrupted)


def test_two_runs_with_the_same_params_write_identical_bytes(tmp_path, raw_dir):
    first, second = stage_workdir(tmp_path / "first", raw_dir), stage_workdir(tmp_path / "second", raw_dir)
    finished(first)
    finished(second)
    assert outputs(first) == outputs(second)


def test_a_checkpoint_of_other_params_is_ignored(tmp_path, raw_dir):
    from aepipe.mnist import load_split
    from aepipe.params import load_params
    import dataclasses

    cpu = torch.device("cpu")
    images = to_tensor(load_split(raw_dir, "train", 512).images, cpu), to_tensor(load_split(raw_dir, "val", 128).images, cpu)
    params = dataclasses.replace(load_params(REPO / "params.yaml").train, epochs=1, device="cpu")
    checkpoint = tmp_path / "train.pt"
    first = train(*images, params, seed=0, log=lambda line: None, checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["history"]["epoch"] == 1

    lines = []
    other = train(*images, dataclasses.replace(params, lr=0.01), seed=0, log=lines.append, checkpoint=checkpoint)
    assert any("ignoring checkpoint" in line and "other parameters" in line for line in lines)
    assert other.initial_val_loss == first.initial_val_loss and other.val_losses != first.val_losses

    checkpoint.write_bytes(b"damaged")
    lines.clear()
    train(*images, params, seed=0, log=lines.append, checkpoint=checkpoint)
    assert any("ignoring unreadable checkpoint" in line for line in lines)


# --- mirrors that hang or fail ------------------------------------------------------------------


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    server.close()


class _ServerError(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(500, "Internal Server Error")

    def log_message(self, format, *args):
        pass


@pytest.fixture
def failing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ServerError)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_hanging_mirror_times_out_and_the_next_one_is_used(silent_server, mnist_dir, tmp_path):
    started = time.monotonic()
    download_mnist(tmp_path / "raw", [silent_server, str(mnist_dir)], timeout_s=0.5)
    assert sorted(path.name for path in (tmp_path / "raw").iterdir()) == sorted(SHA256)
    assert time.monotonic() - started < 30  # 4 files × one 0.5 s timeout, plus the work


def test_failing_mirrors_are_reported_each_with_its_reason(silent_server, failing_server, tmp_path):
    with pytest.raises(DownloadError) as failure:
        download_mnist(tmp_path / "raw", [failing_server, silent_server], timeout_s=0.5)
    reasons = [line.split(": ", 1)[1] for line in str(failure.value).splitlines()[1:]]
    assert reasons == ["HTTP 500 Internal Server Error", "timed out"]
    assert not (tmp_path / "raw").exists() and list(tmp_path.iterdir()) == []
