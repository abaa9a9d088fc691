"""`aepipe grid` on a real Dask scheduler and two workers on 127.0.0.1, with a bare git repository
as the git remote and a local folder as the DVC remote: the grid lands though a worker is killed,
equals `dvc exp run` of the same overrides, is found again (not rerun; with --force restored from
the run cache), reports a failing experiment while the others land, and reaches a second clone."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from distributed import Client

from aepipe.grid.repository import capture_workspace
from aepipe.grid.sweep import experiment_name
from dask_cluster import dask_cluster
from dvc_project import UP_TO_DATE, run
from team import locked_outputs, publish_to_new_origin, setup_clone

# One training, four thresholds: the experiments that start after the first has landed restore the
# training's stages from the run cache it pushed (the product of sweeps: tests/test_grid_parts.py).
GRID = ["-S", "train.epochs=1", "-S", "seed=1", "-S", "threshold.q=0.9,0.95,0.96,0.98"]
AEPIPE = str(Path(sys.executable).parent / "aepipe")


@pytest.fixture(scope="module")
def alice(built_project, tmp_path_factory) -> Path:
    """The small run committed and shared: origin (bare git) and ../aepipe-dvc-storage hold it and
    its run cache."""
    root = tmp_path_factory.mktemp("grid")
    alice = Path(shutil.copytree(built_project, root / "alice", symlinks=True))
    run(["dvc", "exp", "remove", "--all-commits"], alice, None)
    setup_clone(alice)
    run(["git", "add", "-A"], alice, None)
    run(["git", "commit", "-qm", "small run"], alice, None)
    publish_to_new_origin(alice, root)
    run(["dvc", "push", "--run-cache"], alice, None)
    return alice


@pytest.fixture(scope="module")
def cluster(alice, mnist_dir):
    with dask_cluster(alice.parent, str(mnist_dir)) as cluster:
        yield cluster


def grid(alice: Path, cluster, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [AEPIPE, "grid", *args, "--scheduler", cluster.address],
        cwd=alice,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=900)
    return process.returncode, stdout, stderr


def landed(stdout: str) -> dict[str, str]:
    """{experiment name: its progress line} of the experiments that landed."""
    return {
        line.split()[2]: line
        for line in stdout.splitlines()
        if line.startswith("[") and " done: " in line
    }


def grid_experiments(project: Path) -> dict[str, dict]:
    """{name: its `dvc exp show` row's data} of the grid's experiments in a repository."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, None).stdout)
    return {
        exp["name"]: exp["revs"][0]["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        if (exp.get("name") or "").startswith("grid-")
    }


@pytest.fixture(scope="module")
def first_grid(alice, cluster):
    """The grid, run once; worker w2 killed (its process group) while it runs an experiment."""
    process = grid(alice, cluster, *GRID)
    with Client(cluster.address) as client:
        deadline = time.monotonic() + 300
        while not cluster.running_on(client, "w2"):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.5)
        time.sleep(8)  # into the experiment: cloned, `dvc exp run` under way
        killed_during = cluster.running_on(client, "w2")
        cluster.kill_worker("w2")
    result = finish(process)
    cluster.start_worker("w3")  # two workers again for the next tests
    return result, killed_during


@pytest.mark.pipeline
def test_grid_lands_every_experiment_though_a_worker_was_killed(alice, first_grid):
    (status, stdout, stderr), killed_during = first_grid
    assert killed_during, "w2 ran nothing when it was killed"
    assert status == 0, stdout + stderr
    assert len(landed(stdout)) == 4, stdout
    assert "Dask dashboard: http" in stdout
    phases = re.compile(r"clone \d+\.\d s, run \d+\.\d s, push \d+\.\d s$")
    assert all(phases.search(line) for line in landed(stdout).values()), stdout
    experiments = grid_experiments(alice)
    assert sorted(experiments) == sorted(landed(stdout))
    swept = {
        (
            data["params"]["params.yaml"]["data"]["seed"],
            data["params"]["params.yaml"]["data"]["threshold"]["q"],
        )
        for data in experiments.values()
    }
    assert swept == {(1, 0.9), (1, 0.95), (1, 0.96), (1, 0.98)}
    # no half-pushed experiment: every cached output of each pushed one is in the DVC remote
    stored = {
        "".join(path.parts[-2:])
        for path in (alice.parent / "aepipe-dvc-storage" / "files" / "md5").rglob("*")
    }
    origin = alice.parent / "origin.git"
    for name in experiments:
        lock = run(["git", "show", f"{exp_ref(alice, name)}:dvc.lock"], origin, None).stdout
        assert set(locked_outputs(lock).values()) <= stored, name
    # the user's own workspace: nothing but the pulled refs
    assert run(["git", "status", "--porcelain"], alice, None).stdout == ""


def exp_ref(project: Path, name: str) -> str:
    head = run(["git", "rev-parse", "HEAD"], project, None).stdout.strip()
    return f"refs/exps/{head[:2]}/{head[2:]}/{name}"


@pytest.mark.pipeline
def test_a_grid_experiment_is_what_dvc_exp_run_computes_here(alice, first_grid, tmp_path):
    local = Path(shutil.copytree(alice, tmp_path / "local", symlinks=True))
    shutil.rmtree(local / ".dvc" / "cache" / "runs")  # nothing restored: computed here
    overrides = ["-S", "train.epochs=1", "-S", "seed=1", "-S", "threshold.q=0.9"]
    run(["dvc", "exp", "run", *overrides], local, None)
    ours = yaml.safe_load((local / "dvc.lock").read_text())
    (name,) = [
        name for name, line in landed(first_grid[0][1]).items() if "seed=1 threshold.q=0.9 " in line
    ]
    theirs = yaml.safe_load(
        run(["git", "show", f"{exp_ref(alice, name)}:dvc.lock"], alice, None).stdout
    )
    assert model_md5(theirs) == model_md5(ours)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], local, None).stdout)
    here = numbers(shown[""]["data"])
    there = numbers(grid_experiments(alice)[name]["metrics"])
    assert here.keys() == there.keys() and here
    for key, value in here.items():
        assert there[key] == pytest.approx(value, rel=1e-9), key


def model_md5(lock: dict) -> str:
    (md5,) = [
        out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == "models/model.pt"
    ]
    return md5


def numbers(metrics: dict) -> dict:
    """Every metric but the timings, by file and key."""
    return {
        (file, key): value
        for file, content in metrics.items()
        for key, value in content["data"].items()
        if isinstance(value, int | float) and "second" not in key
    }


@pytest.mark.pipeline
def test_the_grid_again_is_found_and_with_force_restored_from_the_run_cache(
    alice, cluster, first_grid
):
    status, stdout, stderr = finish(grid(alice, cluster, *GRID))
    assert status == 0 and "4 experiments: 4 pushed before, 0 to run" in stdout, stdout + stderr
    status, stdout, stderr = finish(grid(alice, cluster, *GRID, "--force"))
    assert status == 0, stdout + stderr
    lines = landed(stdout)
    assert len(lines) == 4 and all("ran 2 stages" in line for line in lines.values()), stdout
    assert sorted(grid_experiments(alice)) == sorted(lines)


@pytest.mark.pipeline
def test_a_failing_experiment_is_reported_and_the_others_land(alice, cluster, first_grid):
    overrides = ["-S", "train.epochs=1", "-S", "seed=1", "-S", "threshold.q=0.97,1.5"]
    status, stdout, stderr = finish(grid(alice, cluster, *overrides))
    assert status == 1, stdout + stderr
    assert "-S threshold.q=1.5):" in stderr and "less than or equal to 1" in stderr, stderr
    (line,) = landed(stdout).values()
    assert "threshold.q=0.97" in line
    assert "1 failed" in stdout


@pytest.mark.pipeline
def test_a_refused_push_is_reported_and_landed_by_the_grid_again(alice, cluster, first_grid):
    overrides = ("train.epochs=1", "seed=1", "threshold.q=0.93")
    baseline, tree, _ = capture_workspace(alice)
    name = experiment_name(baseline, tree, overrides)
    origin = alice.parent / "origin.git"
    taken = origin / "refs" / "exps" / baseline[:2] / baseline[2:] / name
    taken.mkdir(parents=True)  # the experiment's ref path taken: the git remote cannot write it
    args = [arg for override in overrides for arg in ("-S", override)]
    status, stdout, stderr = finish(grid(alice, cluster, *args))
    assert status == 1, stdout + stderr
    assert f"failed: {name} (-S train.epochs=1 -S seed=1 -S threshold.q=0.93):" in stderr
    assert "RuntimeError: dvc exp push" in stderr, stderr
    assert name not in grid_experiments(alice)
    taken.rmdir()
    status, stdout, stderr = finish(grid(alice, cluster, *args))
    assert status == 0, stdout + stderr
    # its stages restored from the run cache that the refused try pushed before its ref
    assert "ran 2 stages" in landed(stdout)[name]
    assert name in grid_experiments(alice)


@pytest.mark.pipeline
def test_a_second_clone_sees_the_grid_without_rerunning_it(alice, first_grid, tmp_path):
    bob = tmp_path / "bob"
    run(["git", "clone", "-q", str(alice.parent / "origin.git"), str(bob)], tmp_path, None)
    storage = alice.parent / "aepipe-dvc-storage"
    run(["dvc", "remote", "add", "--local", "-d", "local", str(storage)], bob, None)
    run(["dvc", "exp", "pull", "origin", *landed(first_grid[0][1])], bob, None)
    experiments = grid_experiments(bob)
    assert sorted(experiments) == sorted(landed(first_grid[0][1]))
    name = sorted(experiments)[0]
    run(["dvc", "exp", "apply", name], bob, None)
    assert run(["dvc", "status"], bob, None).stdout == UP_TO_DATE
    assert os.path.getsize(bob / "models" / "model.pt") > 0


@pytest.fixture(scope="module")
def line_images(alice, tmp_path_factory) -> list[str]:
    """512 of the run's validation digits, the last 256 as a camera whose light changed sees them
    (the drift watch declares those batches); a folder of three digits and an unreadable file."""
    from PIL import Image

    from aepipe.data.dataset import load_split

    digits = load_split(alice / "data" / "raw", "val", 512).images
    digits[256:] = np.clip(digits[256:].astype(np.float32) * 0.6 + 90, 0, 255).astype(np.uint8)
    root = tmp_path_factory.mktemp("line")
    np.save(root / "line.npy", digits)
    (root / "scans").mkdir()
    for index in range(3):
        Image.fromarray(digits[index]).save(root / "scans" / f"{index}.png")
    (root / "scans" / "3.png").write_bytes(b"not a png")
    return [str(root / "line.npy"), str(root / "scans")]


@pytest.mark.pipeline
@pytest.mark.parametrize(
    "detector", [[], ["--onnx", "models/detector.onnx"]], ids=["torch", "onnx"]
)
def test_scoring_on_the_cluster_writes_what_one_process_writes(
    alice, cluster, line_images, tmp_path, detector
):
    written = {}
    for where, on in (("here", []), ("cluster", ["--scheduler", cluster.address])):
        out = tmp_path / where
        done = subprocess.run(
            [AEPIPE, "score", *line_images, *detector, *on, "--out", str(out / "scores.csv")]
            + ["--maps", str(out / "maps"), "--watch-batch", "64"],
            cwd=alice,
            env=cluster.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1, done.stderr  # the unreadable file
        assert "Dask dashboard: http" in done.stdout if on else not done.stdout
        written[where] = {
            path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()
        }
        written[where]["stderr"] = done.stderr
    assert written["cluster"] == written["here"]
    assert len(written["here"]) == 2 + 2 * 515 + 1, sorted(written["here"])[:5]
    assert "drift: batch 5 (64 images)" in written["here"]["stderr"]
    assert "1 of 516 images could not be scored" in written["here"]["stderr"]


@pytest.mark.pipeline
def test_calibrating_on_the_cluster_writes_the_detector_one_process_writes(
    alice, cluster, line_images, tmp_path
):
    good = line_images[0]  # the 512 digits, read as a line's good parts
    detectors = {}
    for where, on in (("here", []), ("cluster", ["--scheduler", cluster.address])):
        out = tmp_path / f"{where}.onnx"
        done = subprocess.run(
            [AEPIPE, "calibrate", good, "--onnx", "models/detector.onnx", *on]
            + ["--false-alarms", "0.05", "--out", str(out)],
            cwd=alice,
            env=cluster.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        detectors[where] = out.read_bytes()
    assert detectors["cluster"] == detectors["here"]
    assert detectors["here"] != (alice / "models" / "detector.onnx").read_bytes()
