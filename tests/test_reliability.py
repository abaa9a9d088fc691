"""Failure behaviour: killed training resumes exactly, stale checkpoints are ignored, slow or broken
mirrors are skipped within the timeout."""

import http.server
import signal
import socket
import threading
import time

import pytest
import torch

from aepipe.data.dataset import CLASSES_FILE
from aepipe.data.mnist import DATASETS, DownloadError, download_dataset
from aepipe.devices import to_tensor
from aepipe.model.training import train
from conftest import REPO
from stage_workdir import finished, outputs, stage_workdir, train_stage


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, raw_dir) -> dict:
    """The outputs of one whole run of the train stage, to compare others with."""
    workdir = stage_workdir(tmp_path_factory.mktemp("uninterrupted"), raw_dir)
    finished(workdir)
    return outputs(workdir)


@pytest.mark.pipeline
def test_killed_training_resumes_and_ends_exactly_as_an_uninterrupted_run(
    tmp_path, raw_dir, uninterrupted
):
    # Two processes with the same params write the same bytes, even when one of them is killed and
    # resumed.
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
    assert outputs(killed) == uninterrupted


def test_a_checkpoint_of_other_params_or_data_is_ignored(tmp_path, raw_dir):
    from aepipe.data.dataset import load_split
    from aepipe.params import load_params

    cpu = torch.device("cpu")
    images = (
        to_tensor(load_split(raw_dir, "train", 512).images, cpu),
        to_tensor(load_split(raw_dir, "val", 128).images, cpu),
    )
    params = load_params(REPO / "params.yaml").train.model_copy(
        update={"epochs": 1, "device": "cpu"}
    )
    checkpoint = tmp_path / "train.pt"
    first = train(*images, params, seed=0, log=lambda line: None, checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["history"]["epoch"] == 1

    # Same params, as many images, but other ones (e.g. another data.normal_classes): no resume.
    lines = []
    other_images = to_tensor(load_split(raw_dir, "train", 1024).images[512:], cpu), images[1]
    train(*other_images, params, seed=0, log=lines.append, checkpoint=checkpoint)
    assert any(
        "ignoring checkpoint" in line and "other parameters or data" in line for line in lines
    )

    lines.clear()
    other = train(
        *images,
        params.model_copy(update={"lr": 0.01}),
        seed=0,
        log=lines.append,
        checkpoint=checkpoint,
    )
    assert any("ignoring checkpoint" in line and "other parameters" in line for line in lines)
    assert (
        other.history.initial_val_loss == first.history.initial_val_loss
        and other.history.val_losses != first.history.val_losses
    )

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
    download_dataset(tmp_path / "raw", [silent_server, str(mnist_dir)], timeout_s=0.5)
    assert sorted(path.name for path in (tmp_path / "raw").iterdir()) == sorted(
        [*DATASETS["mnist"].sha256, CLASSES_FILE]
    )
    assert time.monotonic() - started < 30  # 4 files × one 0.5 s timeout, plus the work


def test_failing_mirrors_are_reported_each_with_its_reason(silent_server, failing_server, tmp_path):
    with pytest.raises(DownloadError) as failure:
        download_dataset(tmp_path / "raw", [failing_server, silent_server], timeout_s=0.5)
    reasons = [line.split(": ", 1)[1] for line in str(failure.value).splitlines()[1:]]
    assert reasons == ["HTTP 500 Internal Server Error", "timed out"]
    assert not (tmp_path / "raw").exists() and list(tmp_path.iterdir()) == []
