"""The run guard's checks on a made-up project: dvc.yaml and dvc.lock read, a dep that is not what
the lock records named, a stage whose inputs change while it runs refused."""

import hashlib

import pytest

from aepipe.dvc_files import declared, locked_md5s, metrics_files
from aepipe.run_guard import not_as_locked, run_guarded

DVC_YAML = """stages:
  train:
    cmd: python stages/train.py
    deps: [stages/train.py, data/raw]
    outs: [models/model.pt, {data/metrics/train.json: {cache: true}}]
    metrics: [{metrics/train.json: {cache: false}}]
  score:
    cmd: python stages/score.py
    deps: [models/model.pt, data/raw]
    metrics: [metrics/score.json]
"""


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


@pytest.fixture
def project(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"weights")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    outs:\n"
        f"    - path: models/model.pt\n      md5: {md5(b'weights')}\n"
        "    - path: data/raw\n      md5: 0123.dir\n"
    )
    return tmp_path


def test_what_dvc_yaml_declares_and_dvc_lock_records(project):
    assert declared("train", "outs", project) == ["models/model.pt", "data/metrics/train.json"]
    assert declared("score", "outs", project) == []
    assert metrics_files(project) == ["metrics/train.json", "metrics/score.json"]
    assert locked_md5s(project) == {"models/model.pt": md5(b"weights")}, "folders are DVC's"
    (project / "dvc.lock").unlink()
    assert locked_md5s(project) == {}


def test_a_dep_that_is_not_what_the_lock_records_is_named(project):
    deps = declared("score", "deps", project)
    assert not_as_locked(deps, project) == []
    (project / "models" / "model.pt").write_bytes(b"weighty")
    assert not_as_locked(deps, project) == [
        f"models/model.pt: md5 {md5(b'weighty')}, dvc.lock records {md5(b'weights')}"
    ]


def test_a_stage_whose_params_change_while_it_runs_is_refused(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    monkeypatch.setenv("DVC_STAGE", "score")

    def edits_params():
        (project / "params.yaml").write_text("seed: 2\n")

    with pytest.raises(SystemExit) as stopped:
        run_guarded(edits_params)
    assert stopped.value.code == 2
    assert "seed: ran with 1, now 2" in capsys.readouterr().err


def test_a_stage_whose_inputs_are_not_as_locked_does_not_start(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    monkeypatch.setenv("DVC_STAGE", "score")
    (project / "models" / "model.pt").write_bytes(b"corrupt")
    started = []
    with pytest.raises(SystemExit):
        run_guarded(lambda: started.append(True))
    assert not started and "make verify-cache REMOVE=1" in capsys.readouterr().err
