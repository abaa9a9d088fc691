"""A result is filed only under the params it was computed with: a second `dvc exp run -S` started
while a stage runs (refused by DVC's lock, but after writing params.yaml) makes the stage fail
before DVC records anything, and tools/verify_cache.py finds entries already poisoned."""

import ast
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from dvc_project import project_env, ran_stages, run

sys.path.insert(0, str(REPO / "tools"))
from verify_cache import disagreements  # noqa: E402

VERIFY = REPO / "tools" / "verify_cache.py"


def test_every_stage_runs_through_the_guard():
    for script in (REPO / "stages").glob("*.py"):
        calls = {
            node.func.id
            for node in ast.walk(ast.parse(script.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert "run_guarded" in calls and "exit_on_error" not in calls, script.name


def entries(project: Path, script: str) -> list[dict]:
    """The run-cache entries of the stage that runs `script`."""
    found = [
        yaml.safe_load(path.read_text())
        for path in (project / ".dvc" / "cache" / "runs").glob("*/*/*")
    ]
    return [entry for entry in found if script in entry["cmd"]]


def param(entry: dict, key: str) -> object:
    value = entry["params"]["params.yaml"]
    for name in key.split("."):
        value = value[name]
    return value


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("stage", "key", "used", "other"),
    [("train", "train.epochs", 1, 3), ("threshold", "threshold.k", 2.0, 3.0)],
)
def test_a_second_run_during_a_stage_files_nothing_under_its_params(
    own_project, mnist_dir, tmp_path, stage, key, used, other
):
    gate, mirror = tmp_path / "gate", str(mnist_dir)
    gate.mkdir()
    dvc_yaml = own_project / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace(
            f"python stages/{stage}.py", f"python tests/gated_stage.py stages/{stage}.py"
        )
    )
    first = subprocess.Popen(
        ["dvc", "exp", "run", "-S", f"{key}={used}", stage],
        cwd=own_project,
        text=True,
        env=project_env(mirror, AEPIPE_TEST_GATE=str(gate)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for(gate / "inside", first)  # the first run's stage has done its work, with `used`

    second = run(
        ["dvc", "exp", "run", "-S", f"{key}={other}", stage], own_project, mirror, check=False
    )
    assert second.returncode != 0 and "rwlock" in second.stderr, second.stdout + second.stderr
    params = yaml.safe_load((own_project / "params.yaml").read_text())
    assert param({"params": {"params.yaml": params}}, key) == other  # DVC wrote it before refusing

    (gate / "open").touch()
    output = first.communicate(timeout=300)[0]
    assert first.returncode != 0, output
    assert (
        f"{key}: ran with {used!r}, now {other!r}" in output and "make restore-params" in output
    ), output
    assert "dvc queue start -j 2" in output, output

    locked = yaml.safe_load((own_project / "dvc.lock").read_text())["stages"][stage]
    assert param(locked, key) != other
    script = f"stages/{stage}.py"
    assert [
        param(entry, key) for entry in entries(own_project, script) if param(entry, key) == other
    ] == []
    verified = subprocess.run(
        [sys.executable, str(VERIFY)], cwd=own_project, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # A colleague's copy that pulls this run cache computes `other` rather than restoring anything.
    storage = tmp_path / "storage"
    run(
        ["dvc", "remote", "add", "--local", "-f", "-d", "shared", str(storage)], own_project, mirror
    )
    run(["dvc", "push", "--run-cache"], own_project, mirror)
    colleague = Path(
        shutil.copytree(
            own_project,
            tmp_path / "colleague",
            symlinks=True,
            ignore=lambda folder, names: ["cache"] if folder.endswith(".dvc") else [],
        )
    )
    run(["dvc", "pull", "--run-cache"], colleague, mirror)
    for copy in (own_project, colleague):
        again = run(
            ["dvc", "exp", "run", "-S", f"{key}={other}", stage],
            copy,
            mirror,
            AEPIPE_TEST_GATE=str(gate),
        )
        assert stage in ran_stages(again.stdout), again.stdout
    if stage == "train":
        assert (
            json.loads((colleague / "data" / "metrics" / "train.json").read_text())["step"] == other
        )
    else:
        assert (
            json.loads((colleague / "reports" / "threshold.json").read_text())["per_batch"]["k"]
            == other
        )


def test_verify_cache_finds_a_planted_poisoned_entry_and_removes_it(own_project):
    (train_entry_path,) = [
        path
        for path in (own_project / ".dvc" / "cache" / "runs").glob("*/*/*")
        if "stages/train.py" in path.read_text()
    ]
    verify = [sys.executable, str(VERIFY)]
    clean = subprocess.run(verify, cwd=own_project, capture_output=True, text=True)
    assert clean.returncode == 0 and "agree with their outputs" in clean.stdout, (
        clean.stdout + clean.stderr
    )

    entry = yaml.safe_load(train_entry_path.read_text())
    epochs = entry["params"]["params.yaml"]["train"]["epochs"]
    # a model of `epochs` filed under epochs + 1
    entry["params"]["params.yaml"]["train"]["epochs"] = epochs + 1
    planted = train_entry_path.with_name("0" * 64)
    planted.write_text(yaml.safe_dump(entry))

    found = subprocess.run(verify, cwd=own_project, capture_output=True, text=True)
    assert found.returncode == 1 and str(planted.name) in found.stdout, found.stdout + found.stderr
    assert (
        f"train.epochs = {epochs + 1} recorded, but data/metrics/train.json says step = {epochs}"
        in found.stdout
    )
    assert "make verify-cache REMOVE=1" in found.stderr
    removed = subprocess.run([*verify, "--remove"], cwd=own_project, capture_output=True, text=True)
    assert removed.returncode == 0 and not planted.exists() and train_entry_path.exists(), (
        removed.stdout
    )
    assert subprocess.run(verify, cwd=own_project, capture_output=True).returncode == 0


def test_disagreements_compare_each_echoed_field_with_its_recorded_param():
    objects = {
        "a": b'{"step": 2}',
        "b": b'{"epochs": 2, "noise_std": 0.1}',
        "c": b'{"per_batch": {"k": 1.0}}',
    }
    train = {
        "cmd": "python stages/train.py",
        "params": {"params.yaml": {"train": {"epochs": 3, "noise_std": 0.1}}},
        "outs": [
            {"path": "data/metrics/train.json", "md5": "a"},
            {"path": "reports/train.json", "md5": "b"},
        ],
    }
    assert disagreements(train, objects.get) == [
        "train.epochs = 3 recorded, but data/metrics/train.json says step = 2",
        "train.epochs = 3 recorded, but reports/train.json says epochs = 2",
    ]
    threshold = {
        "cmd": "python stages/threshold.py",
        "params": {"params.yaml": {"threshold": {"k": 1.0}}},
        "outs": [{"path": "reports/threshold.json", "md5": "c"}],
    }
    assert disagreements(threshold, objects.get) == []
    absent = {**train, "outs": [{"path": "data/metrics/train.json", "md5": "gone"}]}
    assert disagreements(absent, objects.get) == []  # an object not in this cache cannot be read
