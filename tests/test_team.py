"""What a team does with Alice's shared work (tests/team.py) through the default local remote, with
real `dvc` and `git` commands: metrics of commits and experiments, a newcomer without the cache, the
model registry, a branch shared after its workspace moved on, a remote that lacks objects."""

import json
from pathlib import Path

import pytest
import yaml

from dvc_project import UP_TO_DATE, run
from team import QUANTILES, Team, locked_outputs, make, setup_clone


def workspace_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if ".git" not in path.parts and ".dvc" not in path.parts
    }


@pytest.fixture(scope="module")
def team(shared_team) -> Team:
    return shared_team


@pytest.mark.pipeline
def test_bob_reads_metrics_of_commits_and_pulled_experiments(team):
    bob = team.clone("bob-metrics")
    run(["dvc", "pull"], bob, None, **team.env)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], bob, None, **team.env).stdout)
    assert shown[""]["data"]["dvclive/metrics.json"]["data"]["step"] == 2

    run(["dvc", "exp", "pull", "origin", "--all-commits"], bob, None, **team.env)
    names = run(["dvc", "exp", "list", "--name-only"], bob, None).stdout.split()
    assert len(names) == len(QUANTILES)
    diff = json.loads(
        run(["dvc", "metrics", "diff", "HEAD", names[0], "--json"], bob, None, **team.env).stdout
    )
    assert "threshold" in diff["metrics/threshold.json"]


PUBLISHED_METRICS = [
    "dvclive/metrics.json",
    *(
        f"metrics/{stage}.json"
        for stage in ("threshold", "anomaly", "tsne", "denoise", "judge", "samples", "export")
    ),
]


@pytest.mark.pipeline
def test_a_clone_without_cache_or_remote_shows_the_committed_metrics_and_curves(team):
    newcomer = team.root / "newcomer"
    # no remote, nothing pulled
    run(["git", "clone", "-q", str(team.origin), str(newcomer)], team.root, None)
    assert not (newcomer / "models" / "model.pt").exists()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], newcomer, None).stdout)[""]
    assert "error" not in shown and sorted(shown["data"]) == sorted(PUBLISHED_METRICS), shown
    for path in PUBLISHED_METRICS:
        assert shown["data"][path]["data"] == json.loads((team.alice / path).read_text()), path
    diff = run(["dvc", "metrics", "diff", "HEAD"], newcomer, None)
    assert "failed to load" not in diff.stdout + diff.stderr
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], newcomer, None).stdout.strip()
    # the README's way
    table = run(["make", "--no-print-directory", "compare"], newcomer, None, COLUMNS="200").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    committed = next(line for line in table.splitlines() if line.split()[:1] == [branch]).split()
    assert {"val_mse", "threshold", "fp_rate", "auc_rotation"} <= set(
        header
    ) and "!" not in committed, table
    threshold = json.loads((team.alice / "metrics" / "threshold.json").read_text())["threshold"]
    # the row's last columns, one word each: its name and the time it was created come first, in
    # two words today ("04:56 PM") and three on a later day ("Dec 06, 2026")
    values = committed[len(committed) - len(header[2:]) :]
    assert float(values[header[2:].index("threshold")]) == pytest.approx(threshold, rel=1e-4)

    run(["dvc", "exp", "pull", "--no-cache", "origin", "--all-commits"], newcomer, None)
    experiments = json.loads(run(["dvc", "exp", "show", "--json"], newcomer, None).stdout)
    commit = next(row for row in experiments if row["rev"] != "workspace")
    rows = [
        commit["data"],
        *(experiment["revs"][0]["data"] for experiment in commit["experiments"]),
    ]
    assert len(rows) == 1 + len(QUANTILES)
    for row in rows:  # the commit's row and each experiment's: numbers, not errors
        metrics = row["metrics"]
        assert sorted(metrics) == sorted(PUBLISHED_METRICS) and all(
            "error" not in m for m in metrics.values()
        ), metrics

    names = run(["dvc", "exp", "list", "--name-only"], newcomer, None).stdout.split()
    plots = json.loads(run(["dvc", "plots", "diff", *names, "--json"], newcomer, None).stdout)
    charts = {name: chart for name, chart in plots["data"].items() if name.startswith("plots/roc/")}
    assert sorted(charts) == sorted(
        f"plots/roc/{path.name}" for path in (team.alice / "plots" / "roc").iterdir()
    )
    for chart in charts.values():  # one chart per anomaly kind, a curve per experiment
        values = chart[0]["content"]["data"]["values"]
        assert sorted({value["rev"] for value in values}) == sorted(names)
        assert all(sum(value["rev"] == name for value in values) == 101 for name in names)


@pytest.mark.pipeline
def test_the_autoencoder_is_fetched_from_the_registry_through_the_remote(team, tmp_path):
    # What a deployer without a clone runs: `dvc artifacts get` of a version registered (a GTO tag,
    # made in Bob's clone: Alice's repository is only read), with the team's remote in a config file
    # (the local one is in no committed config).
    bob = team.clone("bob-artifacts")
    get = [
        "dvc",
        "artifacts",
        "get",
        str(team.origin),
        "autoencoder",
        "--config",
        str(bob / ".dvc" / "config.local"),
    ]
    unregistered = run([*get, "-o", str(tmp_path / "none.pt")], tmp_path, None, check=False)
    assert (
        unregistered.returncode != 0
        and "Unable to find artifact 'autoencoder'" in unregistered.stderr
    )

    run(["git", "tag", "-a", "autoencoder@v1.0.0", "-m", "first release"], bob, None)
    run(["git", "push", "-q", "origin", "autoencoder@v1.0.0"], bob, None)
    model = (team.alice / "models" / "model.pt").read_bytes()
    run([*get, "-o", str(tmp_path / "latest.pt")], tmp_path, None)
    run([*get, "--rev", "v1.0.0", "-o", str(tmp_path / "v1.pt")], tmp_path, None)
    assert (tmp_path / "latest.pt").read_bytes() == (tmp_path / "v1.pt").read_bytes() == model
    unknown = run(
        [*get, "--rev", "v9.9.9", "-o", str(tmp_path / "v9.pt")], tmp_path, None, check=False
    )
    assert unknown.returncode != 0 and not (tmp_path / "v9.pt").exists()

    # The deployable detector beside it, registered the same way.
    run(["git", "tag", "-a", "detector@v1.0.0", "-m", "first release"], bob, None)
    run(["git", "push", "-q", "origin", "detector@v1.0.0"], bob, None)
    get_detector = [*get[:4], "detector", *get[5:]]
    run([*get_detector, "-o", str(tmp_path / "detector.onnx")], tmp_path, None)
    assert (tmp_path / "detector.onnx").read_bytes() == (
        team.alice / "models" / "detector.onnx"
    ).read_bytes()


def set_perplexity(project: Path, perplexity: float) -> None:
    """tsne.perplexity: the param whose stage is the cheapest to rerun."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tsne"]["perplexity"] = perplexity
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.pipeline
def test_a_commit_shared_after_the_workspace_moved_on_is_pulled_whole(team):
    # `dvc push --run-cache` pushes the workspace's outputs and the run-cache's records, not the
    # outputs those records name: a commit whose outputs the workspace no longer holds needs
    # --all-branches.
    carol = team.clone("carol")
    run(["dvc", "pull"], carol, None, **team.env)
    run(["git", "checkout", "-q", "-b", "carol"], carol, None)
    set_perplexity(carol, 10)
    # a plain repro: no experiment holds these outputs
    run(["dvc", "repro"], carol, None, **team.env)
    run(["git", "commit", "-qam", "perplexity 10"], carol, None)
    committed = locked_outputs((carol / "dvc.lock").read_text())
    set_perplexity(carol, 20)
    run(["dvc", "repro"], carol, None, **team.env)  # the workspace moves on
    run(["git", "push", "-q", "origin", "carol"], carol, None)
    make("share", carol, team.env)

    dave = team.root / "dave"
    run(["git", "clone", "-q", "-b", "carol", str(team.origin), str(dave)], team.root, None)
    setup_clone(dave)
    run(["dvc", "pull"], dave, None, **team.env)
    assert run(["dvc", "status"], dave, None, **team.env).stdout == UP_TO_DATE
    assert locked_outputs((dave / "dvc.lock").read_text()) == committed


@pytest.mark.pipeline
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
