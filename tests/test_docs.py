"""The docs' tables of the default run are what the committed results say (docs/tables.py).

Both sides are read from git's HEAD, not the workspace: a `make repro` rewrites metrics/ and
results/ with this machine's numbers (and timings), and must not turn the committed docs red."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO

COMMITTED = [
    "README.md",
    "docs/reference.md",
    "docs/results.md",
    "dvclive/metrics.json",
    "metrics",
    "results",
    "params.yaml",
    "dvc.yaml",
    "src/aepipe",
    "bench/results/inspection.json",
    "bench/inspection_table.py",
]


@pytest.fixture
def committed(tmp_path) -> Path:
    """The committed docs and results, as HEAD holds them, in a folder of their own."""
    archive = subprocess.run(
        ["git", "archive", "HEAD", "--", *COMMITTED], cwd=REPO, capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


def check_tables(root) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "docs" / "tables.py"), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
    )


def test_the_docs_tables_are_the_committed_results(committed):
    result = check_tables(committed)
    assert result.returncode == 0, result.stderr


def test_a_changed_result_makes_the_tables_stale_until_they_are_rewritten(committed):
    anomaly = json.loads((committed / "results" / "anomaly.json").read_text())
    anomaly["invert"]["roc_auc"] = 0.5
    (committed / "results" / "anomaly.json").write_text(json.dumps(anomaly))

    stale = check_tables(committed)
    assert (
        stale.returncode == 1
        and "docs/results.md" in stale.stderr
        and "README.md" not in stale.stderr
    )
    subprocess.run(
        [sys.executable, str(REPO / "docs" / "tables.py"), "--root", str(committed)], check=True
    )
    assert check_tables(committed).returncode == 0
    assert "| inverted | 5,000 | 0.500 |" in (committed / "docs" / "results.md").read_text()


def test_a_params_description_is_written_once_and_the_reference_follows_it(committed):
    schema = committed / "src" / "aepipe" / "params.py"
    text = schema.read_text()
    assert text.count('"size of the bottleneck"') == 1
    schema.write_text(text.replace('"size of the bottleneck"', '"the latent vector\'s length"'))
    stale = check_tables(committed)
    assert stale.returncode == 1 and "docs/reference.md" in stale.stderr
    subprocess.run(
        [sys.executable, str(REPO / "docs" / "tables.py"), "--root", str(committed)], check=True
    )
    assert (
        "| `train.latent_dim` | 20 | the latent vector's length |"
        in (committed / "docs" / "reference.md").read_text()
    )
