"""The docs' tables of the default run are what the committed results say (docs/tables.py)."""

import json
import shutil
import subprocess
import sys

from conftest import REPO

COMMITTED = ["README.md", "docs/results.md", "dvclive/metrics.json", "metrics", "results"]


def check_tables(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "docs" / "tables.py"), "--check", "--root", str(root)],
                          capture_output=True, text=True)


def test_the_docs_tables_are_the_committed_results():
    result = check_tables(REPO)
    assert result.returncode == 0, result.stderr


def test_a_changed_result_makes_the_tables_stale_until_they_are_rewritten(tmp_path):
    for name in COMMITTED:
        source, copy = REPO / name, tmp_path / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy)
    anomaly = json.loads((tmp_path / "results" / "anomaly.json").read_text())
    anomaly["rotation"]["roc_auc"] = 0.5
    (tmp_path / "results" / "anomaly.json").write_text(json.dumps(anomaly))

    stale = check_tables(tmp_path)
    assert stale.returncode == 1 and "docs/results.md" in stale.stderr and "README.md" not in stale.stderr
    subprocess.run([sys.executable, str(REPO / "docs" / "tables.py"), "--root", str(tmp_path)], check=True)
    assert check_tables(tmp_path).returncode == 0
    assert "| rotated | 5,000 | 0.500 |" in (tmp_path / "docs" / "results.md").read_text()
