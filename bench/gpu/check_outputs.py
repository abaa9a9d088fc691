"""Checks a finished default run's outputs (bench/gpu/run.sh): every metric and figure present, the
numbers sane; writes them to a JSON file. With --compare, how far this run's val MSE is from
another's.

    python bench/gpu/check_outputs.py OUT.json [--compare EARLIER.json]
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

from aepipe.atomic import write_json


def declared_outputs(dvc_yaml: Path) -> tuple[list[str], list[str]]:
    """The metrics files (the publish stage's) and the figures (every stage's PNG plots) as dvc.yaml
    lists them."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]

    def paths(entries: list) -> list[str]:
        return [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries]

    figures = [path for stage in stages.values() for path in paths(stage.get("plots", []))]
    return paths(stages["publish"]["metrics"]), [path for path in figures if path.endswith(".png")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    metrics_files, figures = declared_outputs(Path("dvc.yaml"))
    missing = [path for path in [*metrics_files, *figures] if not Path(path).is_file()]
    metrics = {
        name: value
        for path in metrics_files
        if Path(path).is_file()
        for name, value in json.loads(Path(path).read_text()).items()
    }
    train = json.loads(Path("reports/train.json").read_text())
    problems = [f"missing: {', '.join(missing)}"] if missing else []
    if not 0 < train["final_val_loss"] < train["initial_val_loss"]:
        problems.append(
            f"val MSE {train['final_val_loss']} did not fall below the untrained "
            f"{train['initial_val_loss']}"
        )
    result = {"metrics": metrics, "train": train, "problems": problems}
    if args.compare:
        earlier = json.loads(args.compare.read_text())["train"]["final_val_loss"]
        result["val_mse_relative_difference"] = abs(train["final_val_loss"] - earlier) / earlier
        print(
            f"val MSE {train['final_val_loss']:.6f} vs {earlier:.6f}: relative difference "
            f"{result['val_mse_relative_difference']:.2e}"
        )
    write_json(args.out, result)
    print(
        f"device {train['device']}, val MSE {train['final_val_loss']:.6f}, train "
        f"{train['train_seconds']} s, threshold {metrics.get('threshold')}"
    )
    if problems:
        sys.exit("; ".join(problems))


if __name__ == "__main__":
    main()
