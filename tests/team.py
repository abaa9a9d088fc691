"""Alice's shared work for the sharing tests (tests/test_sharing.py, tests/test_team.py): she
commits the session's small run, queues one experiment per false-alarm budget, runs the queue and
shares it all (a bare git repository as `origin`, the default local DVC remote); her colleagues
clone from there."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from conftest import REPO
from dvc_project import run

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
QUANTILES = (0.9, 0.95)  # threshold.q (1 - the false-alarm budget) of Alice's queued experiments


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    s3: object  # a boto3 client
    server: subprocess.Popen


@contextmanager
def moto_s3(port: int, recording: Path | None = None) -> Iterator[MotoS3]:
    """moto's S3 server on 127.0.0.1:`port` with one empty bucket, stopped by its process id on
    leaving. With `recording`: every request kept in that file, and a server started where one was
    kept replays it first, so that a remote killed and started again holds what it held (moto keeps
    its store in memory; S3 keeps it)."""
    kept = recording is not None and recording.exists() and recording.stat().st_size > 0
    record = {"MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(recording or "")}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(record if recording else {})},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    "moto_server did not start"
                )
                time.sleep(0.1)
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        if kept:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{endpoint}/moto-api/recorder/replay-recording", method="POST"
                ),
                timeout=60,
            ).close()
        else:
            s3.create_bucket(Bucket="aepipe-cache")
        yield MotoS3(endpoint, s3, server)
    finally:
        server.terminate()
        server.wait(timeout=10)


def setup_clone(path: Path) -> None:
    """The part of the README's setup (`make setup`) that is not the virtual environment the tests
    already run in: the `local` remote, ../aepipe-dvc-storage, as an absolute path in
    .dvc/config.local."""
    run(["make", "--no-print-directory", "remote"], path, None)


def make(target: str, path: Path, env: dict[str, str]) -> None:
    """The README's `make share` / `make pull`, run as written in the Makefile; `-o setup`: the
    clone's virtual environment is the one the tests run in (its dvc comes first on PATH)."""
    run(["make", "--no-print-directory", "-o", "setup", target], path, None, **env)


def git_tracked_outputs() -> set[str]:
    """The outputs dvc.yaml leaves to git (`cache: false`): the publish stage's."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {
        path
        for stage in stages.values()
        for kind in ("outs", "metrics", "plots")
        for out in stage.get(kind, [])
        if isinstance(out, dict)
        for path, flags in out.items()
        if flags.get("cache") is False
    }


def locked_outputs(dvc_lock: str) -> dict[str, str]:
    """{output path: md5} of every output in a dvc.lock's text that DVC caches (git holds the
    others)."""
    stages = yaml.safe_load(dvc_lock)["stages"]
    return {
        out["path"]: out["md5"]
        for stage in stages.values()
        for out in stage.get("outs", [])
        if out["path"] not in git_tracked_outputs()
    }


class Team:
    """Alice's shared work, ready for Bob: a bare `origin` and the DVC remote both of them use."""

    def __init__(
        self,
        root: Path,
        alice: Path,
        origin: Path,
        env: dict[str, str],
        s3=None,
        endpoint: str = "",
    ):
        self.root, self.alice, self.origin, self.env, self.s3, self.endpoint = (
            root,
            alice,
            origin,
            env,
            s3,
            endpoint,
        )

    def stored_objects(self) -> set[str]:
        """The hashes (md5, or md5.dir for a directory) of every object in the remote."""
        if self.s3 is None:
            keys = [
                str(path)
                for path in (self.root / "aepipe-dvc-storage" / "files" / "md5").rglob("*")
            ]
        else:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket="aepipe-cache", Prefix="pipeline/files/md5/"
            )
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {"".join(key.split("/")[-2:]) for key in keys}

    def clone(self, name: str) -> Path:
        target = self.root / name
        run(["git", "clone", "-q", str(self.origin), str(target)], self.root, None)
        setup_clone(target)
        if self.s3 is not None:
            use_s3(target, self.endpoint)
        return target

    def alice_experiments(self) -> dict[float, str]:
        """{threshold.q: the dvc.lock text of Alice's experiment with it}, of those on her last
        commit."""
        head = run(["git", "rev-parse", "HEAD"], self.alice, None).stdout.strip()
        refs = run(
            ["git", "for-each-ref", "--format=%(refname)", f"refs/exps/{head[:2]}/{head[2:]}/"],
            self.alice,
            None,
        ).stdout.split()
        found = {}
        for ref in refs:
            params = yaml.safe_load(
                run(["git", "show", f"{ref}:params.yaml"], self.alice, None).stdout
            )
            found[params["threshold"]["q"]] = run(
                ["git", "show", f"{ref}:dvc.lock"], self.alice, None
            ).stdout
        return found


def use_s3(clone: Path, endpoint: str) -> None:
    """The bucket as the clone's default remote (in .dvc/config.local, as each member sets it
    up)."""
    run(["dvc", "remote", "add", "--local", "-d", "s3", "s3://aepipe-cache/pipeline"], clone, None)
    run(["dvc", "remote", "modify", "--local", "s3", "endpointurl", endpoint], clone, None)


def share(root: Path, built_project: Path, mnist_dir: Path) -> Team:
    """Alice commits the session's small run (its outputs in her DVC cache), queues one experiment
    per false-alarm budget, runs the queue and shares it all: git push, then `make share`. Her
    repository is not changed after that: the tests of several processes read it."""
    alice = Path(shutil.copytree(built_project, root / "alice", symlinks=True))
    # the copy's run is committed instead
    run(["dvc", "exp", "remove", "--all-commits"], alice, None)
    setup_clone(alice)
    run(["git", "add", "-A"], alice, None)
    run(["git", "commit", "-qm", "small run"], alice, None)
    origin = publish_to_new_origin(alice, root)
    grid = ",".join(map(str, QUANTILES))
    run(["dvc", "exp", "run", "--queue", "-S", f"threshold.q={grid}"], alice, str(mnist_dir))
    run(["dvc", "exp", "run", "--run-all"], alice, str(mnist_dir))
    make("share", alice, {})
    return Team(root, alice, origin, {})


def publish_to_new_origin(alice: Path, root: Path) -> Path:
    origin = root / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], root, None)
    run(["git", "remote", "remove", "origin"], alice, None, check=False)
    run(["git", "remote", "add", "origin", str(origin)], alice, None)
    run(["git", "push", "-q", "origin", "HEAD"], alice, None)
    return origin
