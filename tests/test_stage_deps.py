"""Every stage lists exactly the library modules it imports (directly or through other modules) in
its dvc.yaml deps, as tools/stage_deps.py (`make deps`) writes them."""

import ast
import shutil
import subprocess
import sys

import yaml

from conftest import REPO

TOOL = REPO / "tools" / "stage_deps.py"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_deps(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root), *args], capture_output=True, text=True
    )


def test_dvc_yaml_lists_what_each_stage_imports():
    result = stage_deps(REPO, "--check")
    assert result.returncode == 0, result.stderr


def test_a_missing_or_extra_library_dep_is_named_and_rewritten(tmp_path):
    shutil.copytree(REPO / "src", tmp_path / "src")
    shutil.copytree(REPO / "stages", tmp_path / "stages")
    text = (REPO / "dvc.yaml").read_text()
    assert (
        "      - src/aepipe/anomaly/calibration.py\n" in text
        and text.count("      - src/aepipe/anomaly/corruptions.py\n") == 2
    )
    # threshold's: now missing
    edited = text.replace("      - src/aepipe/anomaly/calibration.py\n", "", 1)
    edited = edited.replace(
        "      - stages/tsne.py\n",
        "      - stages/tsne.py\n      - src/aepipe/model/autoencoder.py\n",
        1,
    )
    (tmp_path / "dvc.yaml").write_text(edited)

    stale = stage_deps(tmp_path, "--check")
    assert (
        stale.returncode == 1
        and "of threshold, tsne are not what" in stale.stderr
        and "make deps" in stale.stderr
    )
    assert stage_deps(tmp_path).returncode == 0
    assert (tmp_path / "dvc.yaml").read_text() == text
    assert stage_deps(tmp_path, "--check").returncode == 0


def test_every_stage_imports_the_library_through_its_own_script():
    for name, stage in STAGES.items():
        assert f"stages/{name}.py" in stage["deps"], (
            f"stage {name}: its script in stages/ is not among its deps"
        )


def test_dvc_lock_holds_only_stages_that_dvc_yaml_defines():
    # DVC keeps the lock entry of a stage removed from dvc.yaml; a stale one makes `dvc exp push`
    # and the outputs read from the lock name files that no stage writes any more.
    locked = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert set(locked) <= set(STAGES), (
        f"dvc.lock has stages dvc.yaml lacks: {sorted(set(locked) - set(STAGES))}"
    )


def test_the_packages_init_files_hold_only_their_docstrings():
    """They are not in any stage's deps (tools/stage_deps.py): code there would change no stage's
    hash."""
    for init in (REPO / "src" / "aepipe").rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert (
            len(body) == 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ), init


def test_the_metrics_files_are_listed_once_and_every_headline_is_published(monkeypatch):
    """dvc.yaml's publish stage lists the metrics files (the one list: publish and docs/tables.py
    read it); each is copied from a stage's headline, data/metrics/<name>.json. Every headline a
    stage writes is published and a dep of publish, and so is every report (results/)."""
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO / "stages"))
    from aepipe.dvc_files import declared
    from publish import metrics_sources

    outs = {out for name in STAGES if name != "publish" for out in declared(name, "outs")}
    headlines = {out for out in outs if out.startswith("data/metrics/")}
    assert len(headlines) >= 8 and sorted(metrics_sources().values()) == sorted(headlines)
    reports = {out for out in outs if out.startswith("reports/")}
    assert headlines | reports <= set(declared("publish", "deps")), (
        "publish reruns when any of them changes"
    )
