"""The parts of `aepipe grid` that need no cluster: the sweep, the names, the captured workspace,
the thread counts an experiment gets, the cluster files and the grid extra kept out of the
pipeline."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from aepipe.errors import AepipeError
from aepipe.grid.clusters import read_cluster_file, render
from aepipe.grid.repository import capture_workspace, git, remote_url
from aepipe.grid.sweep import expand, experiment_name
from aepipe.grid.task import experiment_env
from conftest import REPO
from dvc_project import project_env


def test_the_grid_is_the_product_of_dvc_sweeps_in_order():
    assert expand(["train.epochs=1", "seed=range(1,3)", "threshold.q=0.9,0.95"]) == [
        ("train.epochs=1", "seed=1", "threshold.q=0.9"),
        ("train.epochs=1", "seed=1", "threshold.q=0.95"),
        ("train.epochs=1", "seed=2", "threshold.q=0.9"),
        ("train.epochs=1", "seed=2", "threshold.q=0.95"),
    ]
    assert expand(["train.lr=choice(0.1,0.2)", "other.yaml:a=1"]) == [
        ("train.lr=0.1", "other.yaml:a=1"),
        ("train.lr=0.2", "other.yaml:a=1"),
    ]
    assert expand(["seed=1,1,2"]) == [("seed=1",), ("seed=2",)]


def test_a_sweep_dvc_would_refuse_is_refused_with_the_syntax_expected():
    with pytest.raises(AepipeError, match=r"(?s)-S seed=range\(1: .*dvc exp run's syntax"):
        expand(["seed=range(1"])


def test_an_experiment_keeps_its_name_and_no_other_has_it():
    name = experiment_name("a" * 40, "b" * 40, ("seed=1",))
    assert name == experiment_name("a" * 40, "b" * 40, ("seed=1",))
    assert name.startswith("grid-") and len(name) == 15
    others = {
        experiment_name("a" * 40, "b" * 40, ("seed=2",)),
        experiment_name("a" * 40, "c" * 40, ("seed=1",)),
        experiment_name("c" * 40, "b" * 40, ("seed=1",)),
    }
    assert name not in others and len(others) == 3


@pytest.fixture
def repo(tmp_path) -> Path:
    env = project_env(None)
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.name", "test"],
        ["git", "config", "user.email", "test@example.com"],
    ):
        subprocess.run(command, cwd=tmp_path, check=True, env=env)
    (tmp_path / ".gitignore").write_text("/ignored.bin\n")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "first"], cwd=tmp_path, check=True, env=env)
    return tmp_path


def test_the_workspace_is_captured_whole_and_the_users_index_untouched(repo):
    (repo / "params.yaml").write_text("seed: 2\n")  # changed, not staged
    (repo / "new.py").write_text("x = 1\n")  # untracked
    (repo / "ignored.bin").write_bytes(b"\0")
    before = git(repo, "status", "--porcelain")
    head, tree, commit = capture_workspace(repo)
    assert git(repo, "status", "--porcelain") == before
    assert git(repo, "rev-parse", "HEAD") == head == git(repo, "rev-parse", f"{commit}^")
    assert git(repo, "rev-parse", f"{commit}^{{tree}}") == tree
    assert git(repo, "show", f"{commit}:params.yaml") == "seed: 2"
    assert git(repo, "show", f"{commit}:new.py") == "x = 1"
    assert "ignored.bin" not in git(repo, "ls-tree", "--name-only", commit)
    assert capture_workspace(repo) == (head, tree, commit)  # the same workspace, the same commit


def test_a_local_git_remote_is_given_to_workers_as_an_absolute_path(repo, tmp_path):
    git(repo, "remote", "add", "origin", "../origin.git")
    git(repo, "remote", "add", "hub", "git@example.com:team/aepipe.git")
    assert remote_url(repo, "origin") == str((repo / "../origin.git").resolve())
    assert remote_url(repo, "hub") == "git@example.com:team/aepipe.git"
    with pytest.raises(AepipeError, match="git remote get-url nowhere"):
        remote_url(repo, "nowhere")


def test_an_experiment_gets_the_clients_thread_counts_not_the_workers(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as a Dask nanny sets them
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    env = experiment_env({"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": "4"})
    assert "OMP_NUM_THREADS" not in env and env["MKL_NUM_THREADS"] == "4"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)  # the stages' `python`


@pytest.mark.parametrize(
    "described, message",
    [
        ({"kind": "slurmm", "options": {}}, "kind 'slurmm'; expected one of slurm, pbs"),
        ({"kind": "slurm", "jobs": 0, "options": {}}, "jobs 0; expected the number of workers"),
        ({"kind": "slurm", "options": ["queue"]}, "options \\['queue'\\]; expected a mapping"),
        (
            {"kind": "slurm", "options": {"queues": "gpu"}},
            "Got unexpected keyword argument 'queues'.*dask_jobqueue.SLURMCluster",
        ),
    ],
)
def test_a_bad_cluster_file_is_named_with_what_was_expected(tmp_path, described, message):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(described))
    with pytest.raises(AepipeError, match=f"(?s){path}: {message}"):
        read_cluster_file(path) if "jobs" in message or "kind" in message else render(path)


def test_the_slurm_example_renders_to_a_job_script_of_one_gpu_worker():
    script = render(REPO / "docs" / "grid" / "slurm.yaml")
    assert script.startswith("# 4 job(s) of:\n#!/usr/bin/env bash")
    for line in ("#SBATCH -p gpu", "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=8"):
        assert line in script
    worker = script.strip().splitlines()[-1]
    assert worker.startswith("/shared/aepipe/.venv/bin/python -m distributed.cli.dask_worker")
    assert "--nthreads 1" in worker and "--resources GPU=1" in worker


def test_the_kubernetes_example_renders_to_a_daskcluster_of_gpu_workers():
    manifest = yaml.safe_load(render(REPO / "docs" / "grid" / "kubernetes.yaml"))
    assert manifest["kind"] == "DaskCluster" and manifest["metadata"]["name"] == "aepipe-grid"
    worker = manifest["spec"]["worker"]
    assert worker["replicas"] == 4
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example.com/aepipe:latest"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["args"][:6] == ["dask", "worker", "--nthreads", "1", "--resources", "GPU=1"]


def test_dask_is_the_grid_extras_alone_and_no_stage_imports_the_grid():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    holding_dask = {
        extra for extra, requirements in extras.items() if any("dask" in r for r in requirements)
    }
    assert holding_dask == {"grid"}
    assert not any("dask" in requirement for requirement in project["dependencies"])
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    deps = [dep for stage in stages.values() for dep in stage.get("deps", [])]
    assert not [dep for dep in deps if "grid" in dep]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no -S overrides: a grid needs at least one"),
        (["--render"], "--render shows what a --cluster FILE submits"),
    ],
)
def test_a_grid_command_without_what_it_needs_says_what(args, message):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "aepipe"), "grid", *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and message in done.stderr


def test_scoring_on_a_cluster_without_dask_says_how_to_install_it(monkeypatch):
    from aepipe.deploy.scoring import Cluster, scored_in_order

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the grid extra were missing
    cluster = Cluster(scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(AepipeError, match=r"--scheduler, --cluster\) needs Dask: pip install"):
        scored_in_order(iter([]), None, False, cluster=cluster)


def test_a_scorers_files_are_known_by_their_roles_and_bytes():
    from aepipe.deploy.cluster_scoring import ScorerFiles

    onnx = ScorerFiles({"onnx": b"detector"})
    assert onnx.key == ScorerFiles({"onnx": b"detector"}).key
    assert onnx.key != ScorerFiles({"onnx": b"detectos"}).key
    swapped = ScorerFiles({"model": b"b", "score": b"a", "threshold": b"c"})
    assert ScorerFiles({"model": b"a", "score": b"b", "threshold": b"c"}).key != swapped.key
