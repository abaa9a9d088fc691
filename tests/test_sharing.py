"""Sharing experiments through DVC remotes, with real `dvc` and `git` commands: Alice's queued
experiments (tests/team.py) through the default local remote and, the same repository, through
moto's S3 server; Bob clones, pulls, sees her experiments and reruns one of them without computing
anything.
"""

import json
import shutil
from pathlib import Path

import pytest

from dvc_project import UP_TO_DATE, ran_stages, run
from team import (
    QUANTILES,
    S3_CREDENTIALS,
    Team,
    free_port,
    locked_outputs,
    make,
    moto_s3,
    publish_to_new_origin,
    use_s3,
)


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, with one empty bucket."""
    with moto_s3(free_port()) as moto:
        yield moto.endpoint, moto.s3


def share_through_s3(local: Team, root: Path, endpoint: str, s3) -> Team:
    """The same work shared through moto's S3 server instead: a copy of Alice's repository (her
    commit, cache and experiments: nothing run again), the bucket her default remote, then `make
    share`."""
    alice = Path(shutil.copytree(local.alice, root / "alice", symlinks=True))
    use_s3(alice, endpoint)
    origin = publish_to_new_origin(alice, root)
    make("share", alice, S3_CREDENTIALS)
    return Team(root, alice, origin, S3_CREDENTIALS, s3, endpoint)


@pytest.fixture(scope="module", params=["local", "s3"])
def team(request, tmp_path_factory, shared_team) -> Team:
    if request.param == "local":
        return shared_team
    endpoint, s3 = request.getfixturevalue("s3_endpoint")
    return share_through_s3(shared_team, tmp_path_factory.mktemp("team-s3"), endpoint, s3)


def test_alice_shares_every_output_of_her_experiments(team):
    experiments = team.alice_experiments()
    assert sorted(experiments) == list(QUANTILES), "the queue did not run both experiments"
    stored = team.stored_objects()
    for q, dvc_lock in experiments.items():
        missing = {path for path, md5 in locked_outputs(dvc_lock).items() if md5 not in stored}
        assert not missing, f"threshold.q={q}: not in the remote: {sorted(missing)}"
    if team.s3 is not None:
        assert not (team.root / "aepipe-dvc-storage").exists(), "the S3 remote was not the default"


@pytest.mark.pipeline
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
    # Only the stages kept out of the run cache: check_params names this machine's CPU numerics (the
    # same kind as Alice's here, so nothing after it reruns), publish's outputs are git's.
    assert ran_stages(result.stdout) == ["check_params", "publish"], result.stdout
    expected = locked_outputs(team.alice_experiments()[0.95])
    assert locked_outputs((bob / "dvc.lock").read_text()) == expected
    metrics = json.loads((bob / "metrics" / "threshold.json").read_text())
    assert metrics["threshold"] == seen[0.95]


def test_repro_pull_restores_the_committed_run_without_computing(shared_team):
    """Through the local remote only: pulling from S3 is `make pull`'s, in the test above."""
    team = shared_team
    bob = team.clone("bob-repro")
    result = run(["dvc", "repro", "--pull"], bob, None, **team.env)
    assert ran_stages(result.stdout) == ["check_params"]
    assert run(["dvc", "status"], bob, None, **team.env).stdout == UP_TO_DATE
    assert (bob / "models" / "model.pt").read_bytes() == (
        team.alice / "models" / "model.pt"
    ).read_bytes()
