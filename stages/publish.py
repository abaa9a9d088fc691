"""Stage publish: the headline numbers and the curves of the run, where git tracks them.

Every other stage's outputs are DVC-cached, so that the team's run cache can restore them; a clone
without that cache sees what this stage copies: `dvc metrics show`, `dvc exp show` and `dvc plots
diff` read these files from git. It runs no model: a colleague's `dvc exp run --pull` reruns it alone.
"""

import shutil
from pathlib import Path

from aepipe.atomic import copy_file
from guard import run_guarded

# Each stage's headline numbers → the metrics file DVC shows; dvclive/metrics.json is also the one
# DVCLive updates while the train stage runs (so `dvc exp show` follows a queued training).
METRICS = {"data/metrics/train.json": "dvclive/metrics.json",
           **{f"data/metrics/{stage}.json": f"metrics/{stage}.json"
              for stage in ("threshold", "anomaly", "tsne", "denoise", "judge", "samples", "export")}}
# Whole folders: the loss per epoch (DVCLive's), each anomaly kind's ROC and PR curve (drawn by `dvc
# plots`), and every stage's report (all its numbers; docs/tables.py writes the docs' tables from them).
FOLDERS = {"dvclive/plots/metrics": "plots/loss", "data/curves/roc": "plots/roc", "data/curves/pr": "plots/pr",
           "reports": "results"}


def main() -> None:
    for source, destination in METRICS.items():
        copy_file(source, destination)
    for source_folder, folder in FOLDERS.items():
        shutil.rmtree(folder, ignore_errors=True)  # a kind the run no longer has must not linger
        for source in sorted(Path(source_folder).iterdir()):
            if not source.name.startswith("."):  # DVC's .gitignore of the cached files: git must see the copies
                copy_file(source, Path(folder) / source.name)


if __name__ == "__main__":
    run_guarded(main)
