"""Stage publish: the headline numbers and the curves of the run, where git tracks them.

Every other stage's outputs are DVC-cached, so that the team's run cache can restore them; a clone
without that cache sees what this stage copies: `dvc metrics show`, `dvc exp show` and `dvc plots
diff` read these files from git. It runs no model: a colleague's `dvc exp run --pull` reruns it
alone.
"""

import shutil
from pathlib import Path

from aepipe.atomic import copy_file
from aepipe.dvc_files import declared
from aepipe.run_guard import run_guarded

# dvclive/metrics.json is the training's headline (data/metrics/train.json), and the file DVCLive
# updates while the train stage runs (so `dvc exp show` follows a queued training).
DVCLIVE_METRICS = {"dvclive/metrics.json": "data/metrics/train.json"}
# Whole folders: the loss per epoch (DVCLive's), each anomaly kind's ROC and PR curve (drawn by `dvc
# plots`), and every stage's report (all its numbers; docs/tables.py writes the docs' tables from
# them).
FOLDERS = {
    "dvclive/plots/metrics": "plots/loss",
    "data/curves/roc": "plots/roc",
    "data/curves/pr": "plots/pr",
    "reports": "results",
}


def metrics_sources() -> dict[str, str]:
    """Each metrics file this stage declares in dvc.yaml (the one list of them) → the stage headline
    it copies: metrics/<stage>.json from data/metrics/<stage>.json."""
    return {
        path: DVCLIVE_METRICS.get(path, f"data/{path}") for path in declared("publish", "metrics")
    }


def main() -> None:
    for destination, source in metrics_sources().items():
        copy_file(source, destination)
    for source_folder, folder in FOLDERS.items():
        shutil.rmtree(folder, ignore_errors=True)  # a kind the run no longer has must not linger
        for source in sorted(Path(source_folder).iterdir()):
            # DVC's .gitignore of the cached files: git must see the copies
            if not source.name.startswith("."):
                copy_file(source, Path(folder) / source.name)


if __name__ == "__main__":
    run_guarded(main)
