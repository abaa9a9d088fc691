"""Sharing artifacts through DVC remotes, and comparing experiments, with real `dvc` commands.

One person runs the pipeline, commits and pushes (data and run-cache); a colleague clones, pulls,
and has nothing to recompute.
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvc_project import SMALL, copy_project, ran_stages, run

UP_TO_DATE = "Data and pipelines are up to date."
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def workspace_files(project: Path) -> set[str]:
    return {str(path.relative_to(project)) for path in project.rglob("*")
            if ".git" not in path.parts and ".dvc" not in path.parts}


@pytest.fixture(scope="module")
def origin(tmp_path_factory, mnist_dir) -> Path:
    """A project whose small pipeline run is committed; its default remote is ../aepipe-dvc-storage."""
    origin = copy_project(tmp_path_factory.mktemp("team") / "origin")
    run(["dvc", "exp", "run", *SMALL], origin, str(mnist_dir))
    run(["git", "add", "-A"], origin, None)
    run(["git", "commit", "-qm", "small run"], origin, None)
    return origin


def clone(origin: Path, name: str) -> Path:
    target = origin.parent / name
    run(["git", "clone", "-q", str(origin), str(target)], origin.parent, None)
    return target


def assert_same_results_and_nothing_to_do(origin: Path, copy: Path, **env: str) -> None:
    assert UP_TO_DATE in run(["dvc", "status"], copy, None, **env).stdout
    assert ran_stages(run(["dvc", "repro"], copy, None, **env).stdout) == []
    assert (copy / "models" / "model.pt").read_bytes() == (origin / "models" / "model.pt").read_bytes()
    assert (copy / "plots" / "tsne.png").read_bytes() == (origin / "plots" / "tsne.png").read_bytes()


def test_default_local_remote_round_trip(origin):
    run(["dvc", "push", "--run-cache"], origin, None)
    assert (origin.parent / "aepipe-dvc-storage" / "files" / "md5").is_dir()

    colleague = clone(origin, "colleague")
    run(["dvc", "pull", "--run-cache"], colleague, None)  # no MNIST mirror: nothing may be downloaded
    assert_same_results_and_nothing_to_do(origin, colleague)


def test_repro_pull_fetches_instead_of_recomputing(origin):
    run(["dvc", "push"], origin, None)
    colleague = clone(origin, "repro-pull")
    result = run(["dvc", "repro", "--pull"], colleague, None)
    assert ran_stages(result.stdout) == []
    assert_same_results_and_nothing_to_do(origin, colleague)


def test_a_remote_missing_objects_fails_clearly_and_changes_nothing(origin, tmp_path):
    colleague = clone(origin, "unlucky")
    before = workspace_files(colleague)
    empty = tmp_path / "empty-remote"
    empty.mkdir()
    run(["dvc", "remote", "add", "--local", "-d", "empty", str(empty)], colleague, None)
    result = run(["dvc", "pull"], colleague, None, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "failed to pull data from the cloud" in output and "Missing cache files" in output
    assert workspace_files(colleague) == before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, with one empty bucket; stopped by its process id."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="aepipe-cache")
        yield endpoint, s3
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_s3_remote_round_trip(origin, s3_endpoint):
    endpoint, s3 = s3_endpoint
    run(["dvc", "remote", "add", "s3", "s3://aepipe-cache/pipeline"], origin, None)
    run(["dvc", "remote", "modify", "s3", "endpointurl", endpoint], origin, None)
    run(["git", "commit", "-qam", "S3 remote"], origin, None)
    run(["dvc", "push", "-r", "s3", "--run-cache"], origin, None, **S3_CREDENTIALS)
    stored = s3.list_objects_v2(Bucket="aepipe-cache", Prefix="pipeline/")
    assert stored["KeyCount"] > 10

    colleague = clone(origin, "s3-colleague")
    run(["dvc", "pull", "-r", "s3", "--run-cache"], colleague, None, **S3_CREDENTIALS)
    assert_same_results_and_nothing_to_do(origin, colleague, **S3_CREDENTIALS)


def test_queued_experiments_run_and_are_compared(origin, mnist_dir):
    run(["dvc", "exp", "run", "--queue", *SMALL, "-S", "train.latent_dim=2,4"], origin, str(mnist_dir))
    run(["dvc", "exp", "run", "--run-all"], origin, str(mnist_dir))
    shown = json.loads(run(["dvc", "exp", "show", "--json"], origin, None).stdout)
    results = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            latent_dim = data["params"]["params.yaml"]["data"]["train"]["latent_dim"]
            results[latent_dim] = data["metrics"]["metrics/train.json"]["data"]["final_val_loss"]
    assert set(results) >= {2, 4}
    assert all(0 < loss < 0.1 for loss in results.values())
    assert results[2] != results[4]
