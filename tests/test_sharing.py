"""Sharing experiments and artifacts through DVC remotes, with real `dvc` and `git` commands.

Alice commits a run of the pipeline, runs a queue of experiments and shares them (a bare git
repository as `origin`, and a DVC remote: the default local one, or moto's S3 server); Bob clones,
pulls, sees her experiments and reruns one of them without computing anything.
"""

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from dvc_project import ran_stages, run

UP_TO_DATE = "Data and pipelines are up to date."
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
QUANTILES = (0.9, 0.95)  # threshold.q (1 - the false-alarm budget) of Alice's queued experiments


def workspace_files(project: Path) -> set[str]:
    return {str(path.relative_to(project)) for path in project.rglob("*")
            if ".git" not in path.parts and ".dvc" not in path.parts}


def setup_clone(path: Path) -> None:
    """The part of the README's setup (`make setup`) that is not the virtual environment the tests
    already run in: the `local` remote, ../aepipe-dvc-storage, as an absolute path in .dvc/config.local."""
    run(["make", "--no-print-directory", "remote"], path, None)


def make(target: str, path: Path, env: dict[str, str]) -> None:
    """The README's `make share` / `make pull`, run as written in the Makefile; `-o setup`: the clone's
    virtual environment is the one the tests run in (its dvc comes first on PATH)."""
    run(["make", "--no-print-directory", "-o", "setup", target], path, None, **env)


def git_tracked_outputs() -> set[str]:
    """The outputs dvc.yaml leaves to git (`cache: false`): the publish stage's."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {path for stage in stages.values() for kind in ("outs", "metrics", "plots") for out in stage.get(kind, [])
            if isinstance(out, dict) for path, flags in out.items() if flags.get("cache") is False}


def locked_outputs(dvc_lock: str) -> dict[str, str]:
    """{output path: md5} of every output in a dvc.lock's text that DVC caches (git holds the others)."""
    stages = yaml.safe_load(dvc_lock)["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])
            if out["path"] not in git_tracked_outputs()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
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


class Team:
    """Alice's shared work, ready for Bob: a bare `origin` and the DVC remote both of them use."""

    def __init__(self, root: Path, alice: Path, origin: Path, env: dict[str, str], s3=None):
        self.root, self.alice, self.origin, self.env, self.s3 = root, alice, origin, env, s3

    def stored_objects(self) -> set[str]:
        """The hashes (md5, or md5.dir for a directory) of every object in the remote."""
        if self.s3 is None:
            keys = [str(path) for path in (self.root / "aepipe-dvc-storage" / "files" / "md5").rglob("*")]
        else:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket="aepipe-cache", Prefix="pipeline/files/md5/")
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {"".join(key.split("/")[-2:]) for key in keys}

    def clone(self, name: str) -> Path:
        target = self.root / name
        run(["git", "clone", "-q", str(self.origin), str(target)], self.root, None)
        setup_clone(target)
        return target

    def alice_experiments(self) -> dict[float, str]:
        """{threshold.q: the dvc.lock text of Alice's experiment with it}, of those on her last commit."""
        head = run(["git", "rev-parse", "HEAD"], self.alice, None).stdout.strip()
        refs = run(["git", "for-each-ref", "--format=%(refname)", f"refs/exps/{head[:2]}/{head[2:]}/"], self.alice,
                   None).stdout.split()
        found = {}
        for ref in refs:
            params = yaml.safe_load(run(["git", "show", f"{ref}:params.yaml"], self.alice, None).stdout)
            found[params["threshold"]["q"]] = run(["git", "show", f"{ref}:dvc.lock"], self.alice, None).stdout
        return found


def share(root: Path, built_project: Path, mnist_dir: Path, s3=None, **env: str) -> Team:
    """Alice commits the session's small run (its outputs in her DVC cache), queues one experiment per
    false-alarm budget, runs the queue and shares it all: git push, then `make share`."""
    alice = Path(shutil.copytree(built_project, root / "alice", symlinks=True))
    run(["dvc", "exp", "remove", "--all-commits"], alice, None)  # the copy's run is committed instead
    setup_clone(alice)
    if s3 is not None:
        run(["dvc", "remote", "add", "-d", "s3", "s3://aepipe-cache/pipeline"], alice, None)
        run(["dvc", "remote", "modify", "s3", "endpointurl", env.pop("endpoint")], alice, None)
        run(["dvc", "config", "--local", "--unset", "core.remote"], alice, None)  # the team's default wins
    run(["git", "add", "-A"], alice, None)
    run(["git", "commit", "-qm", "small run"], alice, None)
    origin = root / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], root, None)
    run(["git", "remote", "add", "origin", str(origin)], alice, None)
    run(["git", "push", "-q", "origin", "HEAD"], alice, None)

    grid = ",".join(map(str, QUANTILES))
    run(["dvc", "exp", "run", "--queue", "-S", f"threshold.q={grid}"], alice, str(mnist_dir), **env)
    run(["dvc", "exp", "run", "--run-all"], alice, str(mnist_dir), **env)
    make("share", alice, env)
    return Team(root, alice, origin, env, s3)


@pytest.fixture(scope="module", params=["local", "s3"])
def team(request, tmp_path_factory, built_project, mnist_dir) -> Team:
    root = tmp_path_factory.mktemp(f"team-{request.param}")
    if request.param == "local":
        return share(root, built_project, mnist_dir)
    endpoint, s3 = request.getfixturevalue("s3_endpoint")
    return share(root, built_project, mnist_dir, s3, endpoint=endpoint, **S3_CREDENTIALS)


def test_alice_shares_every_output_of_her_experiments(team):
    experiments = team.alice_experiments()
    assert sorted(experiments) == list(QUANTILES), "the queue did not run both experiments"
    stored = team.stored_objects()
    for q, dvc_lock in experiments.items():
        missing = {path for path, md5 in locked_outputs(dvc_lock).items() if md5 not in stored}
        assert not missing, f"threshold.q={q}: not in the remote: {sorted(missing)}"
    if team.s3 is not None:
        assert not (team.root / "aepipe-dvc-storage").exists(), "the committed S3 remote was not the default"


def test_bob_sees_alice_experiments_and_reruns_one_without_computing(team):
    bob = team.clone("bob")
    make("pull", bob, team.env)  # no MNIST mirror: nothing may be downloaded

    shown = json.loads(run(["dvc", "exp", "show", "--json"], bob, None, **team.env).stdout)
    seen = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            q = data["params"]["params.yaml"]["data"]["threshold"]["q"]
            seen[q] = data["metrics"]["metrics/threshold.json"]["data"]["threshold"]
    assert sorted(seen) == list(QUANTILES), seen
    assert seen[0.9] < seen[0.95], "a smaller false-alarm budget sets a higher threshold"

    result = run(["dvc", "exp", "run", "--pull", "-S", "threshold.q=0.95"], bob, None, **team.env)
    assert ran_stages(result.stdout) == ["publish"], result.stdout  # it alone: its outputs are git's, not cached
    expected = locked_outputs(team.alice_experiments()[0.95])
    assert locked_outputs((bob / "dvc.lock").read_text()) == expected
    metrics = json.loads((bob / "metrics" / "threshold.json").read_text())
    assert metrics["threshold"] == seen[0.95]


# What these three check is the same whichever remote holds the objects: they run with the local one.
@pytest.mark.parametrize("team", ["local"], indirect=True)
def test_bob_reads_metrics_of_commits_and_pulled_experiments(team):
    bob = team.clone("bob-metrics")
    run(["dvc", "pull"], bob, None, **team.env)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], bob, None, **team.env).stdout)
    assert shown[""]["data"]["dvclive/metrics.json"]["data"]["step"] == 2

    run(["dvc", "exp", "pull", "origin", "--all-commits"], bob, None, **team.env)
    names = run(["dvc", "exp", "list", "--name-only"], bob, None).stdout.split()
    assert len(names) == len(QUANTILES)
    diff = json.loads(run(["dvc", "metrics", "diff", "HEAD", names[0], "--json"], bob, None, **team.env).stdout)
    assert "threshold" in diff["metrics/threshold.json"]


def test_repro_pull_restores_the_committed_run_without_computing(team):
    bob = team.clone("bob-repro")
    result = run(["dvc", "repro", "--pull"], bob, None, **team.env)
    assert ran_stages(result.stdout) == []
    assert UP_TO_DATE in run(["dvc", "status"], bob, None, **team.env).stdout
    assert (bob / "models" / "model.pt").read_bytes() == (team.alice / "models" / "model.pt").read_bytes()


PUBLISHED_METRICS = ["dvclive/metrics.json", *(f"metrics/{stage}.json" for stage in
                                             ("threshold", "anomaly", "tsne", "denoise", "judge", "samples", "export"))]


@pytest.mark.parametrize("team", ["local"], indirect=True)
def test_a_clone_without_cache_or_remote_shows_the_committed_metrics_and_curves(team):
    newcomer = team.root / "newcomer"
    run(["git", "clone", "-q", str(team.origin), str(newcomer)], team.root, None)  # no remote, nothing pulled
    assert not (newcomer / "models" / "model.pt").exists()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], newcomer, None).stdout)[""]
    assert "error" not in shown and sorted(shown["data"]) == sorted(PUBLISHED_METRICS), shown
    for path in PUBLISHED_METRICS:
        assert shown["data"][path]["data"] == json.loads((team.alice / path).read_text()), path
    diff = run(["dvc", "metrics", "diff", "HEAD"], newcomer, None)
    assert "failed to load" not in diff.stdout + diff.stderr
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], newcomer, None).stdout.strip()
    table = run(["make", "--no-print-directory", "compare"], newcomer, None, COLUMNS="200").stdout  # the README's way
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    committed = next(line for line in table.splitlines() if line.split()[:1] == [branch]).split()
    assert {"val_mse", "threshold", "fp_rate", "auc_rotation"} <= set(header) and "!" not in committed, table
    threshold = json.loads((team.alice / "metrics" / "threshold.json").read_text())["threshold"]
    values = committed[3:]  # after the name and the time it was created ("04:56 PM")
    assert float(values[header[2:].index("threshold")]) == pytest.approx(threshold, rel=1e-4)

    run(["dvc", "exp", "pull", "--no-cache", "origin", "--all-commits"], newcomer, None)
    experiments = json.loads(run(["dvc", "exp", "show", "--json"], newcomer, None).stdout)
    commit = next(row for row in experiments if row["rev"] != "workspace")
    rows = [commit["data"], *(experiment["revs"][0]["data"] for experiment in commit["experiments"])]
    assert len(rows) == 1 + len(QUANTILES)
    for row in rows:  # the commit's row and each experiment's: numbers, not errors
        metrics = row["metrics"]
        assert sorted(metrics) == sorted(PUBLISHED_METRICS) and all("error" not in m for m in metrics.values()), metrics

    names = run(["dvc", "exp", "list", "--name-only"], newcomer, None).stdout.split()
    plots = json.loads(run(["dvc", "plots", "diff", *names, "--json"], newcomer, None).stdout)
    charts = {name: chart for name, chart in plots["data"].items() if name.startswith("plots/roc/")}
    assert sorted(charts) == sorted(f"plots/roc/{path.name}" for path in (team.alice / "plots" / "roc").iterdir())
    for chart in charts.values():  # one chart per anomaly kind, a curve per experiment
        values = chart[0]["content"]["data"]["values"]
        assert sorted({value["rev"] for value in values}) == sorted(names)
        assert all(sum(value["rev"] == name for value in values) == 101 for name in names)


@pytest.mark.parametrize("team", ["local"], indirect=True)
def test_the_autoencoder_is_fetched_from_the_registry_through_the_remote(team, tmp_path):
    # What a deployer without a clone runs: `dvc artifacts get` of a version Alice registered (a GTO
    # tag), with the team's remote in a config file (the local one is in no committed config).
    bob = team.clone("bob-artifacts")
    get = ["dvc", "artifacts", "get", str(team.origin), "autoencoder", "--config", str(bob / ".dvc" / "config.local")]
    unregistered = run([*get, "-o", str(tmp_path / "none.pt")], tmp_path, None, check=False)
    assert unregistered.returncode != 0 and "Unable to find artifact 'autoencoder'" in unregistered.stderr

    run(["git", "tag", "-a", "autoencoder@v1.0.0", "-m", "first release"], team.alice, None)
    run(["git", "push", "-q", "origin", "autoencoder@v1.0.0"], team.alice, None)
    model = (team.alice / "models" / "model.pt").read_bytes()
    run([*get, "-o", str(tmp_path / "latest.pt")], tmp_path, None)
    run([*get, "--rev", "v1.0.0", "-o", str(tmp_path / "v1.pt")], tmp_path, None)
    assert (tmp_path / "latest.pt").read_bytes() == (tmp_path / "v1.pt").read_bytes() == model
    unknown = run([*get, "--rev", "v9.9.9", "-o", str(tmp_path / "v9.pt")], tmp_path, None, check=False)
    assert unknown.returncode != 0 and not (tmp_path / "v9.pt").exists()

    # The deployable detector beside it, registered the same way.
    run(["git", "tag", "-a", "detector@v1.0.0", "-m", "first release"], team.alice, None)
    run(["git", "push", "-q", "origin", "detector@v1.0.0"], team.alice, None)
    get_detector = [*get[:4], "detector", *get[5:]]
    run([*get_detector, "-o", str(tmp_path / "detector.onnx")], tmp_path, None)
    assert (tmp_path / "detector.onnx").read_bytes() == (team.alice / "models" / "detector.onnx").read_bytes()


def set_threshold_k(project: Path, k: float) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["threshold"]["k"] = k
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.parametrize("team", ["local"], indirect=True)
def test_a_commit_shared_after_the_workspace_moved_on_is_pulled_whole(team):
    # `dvc push --run-cache` pushes the workspace's outputs and the run-cache's records, not the outputs
    # those records name: a commit whose outputs the workspace no longer holds needs --all-branches.
    carol = team.clone("carol")
    run(["dvc", "pull"], carol, None, **team.env)
    run(["git", "checkout", "-q", "-b", "carol"], carol, None)
    set_threshold_k(carol, 2)
    run(["dvc", "repro"], carol, None, **team.env)  # a plain repro: no experiment holds these outputs
    run(["git", "commit", "-qam", "threshold k 2"], carol, None)
    committed = locked_outputs((carol / "dvc.lock").read_text())
    set_threshold_k(carol, 3)
    run(["dvc", "repro"], carol, None, **team.env)  # the workspace moves on
    run(["git", "push", "-q", "origin", "carol"], carol, None)
    make("share", carol, team.env)

    dave = team.root / "dave"
    run(["git", "clone", "-q", "-b", "carol", str(team.origin), str(dave)], team.root, None)
    setup_clone(dave)
    run(["dvc", "pull"], dave, None, **team.env)
    assert UP_TO_DATE in run(["dvc", "status"], dave, None, **team.env).stdout
    assert locked_outputs((dave / "dvc.lock").read_text()) == committed


@pytest.mark.parametrize("team", ["local"], indirect=True)
def test_a_remote_missing_objects_fails_clearly_and_changes_nothing(team, tmp_path):
    colleague = team.clone("unlucky")
    before = workspace_files(colleague)
    empty = tmp_path / "empty-remote"
    empty.mkdir()
    run(["dvc", "remote", "add", "--local", "-d", "empty", str(empty)], colleague, None)
    result = run(["dvc", "pull"], colleague, None, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "failed to pull data from the cloud" in output and "Missing cache files" in output
    assert workspace_files(colleague) == before
