"""Pipeline speed: every stage, the whole `dvc repro`, and one-class experiments, as a user runs
them.

    python bench/pipeline_speed.py [--digit 3] [--rev REV]

Works on a fresh `git clone` of this repository's HEAD (or REV) in a temporary directory (so it
measures committed code, named in the results, and leaves the workspace, its dvc.lock and its cache
alone). MNIST comes from $AEPIPE_MNIST_MIRROR (a URL or a local folder of the four .gz files) or the
official mirrors.
1. `dvc repro`: the whole default pipeline from nothing (the download included).
2. `dvc repro -f -s NAME` for each stage: its wall time and the peak memory of the stage's process
   (the largest resident set of DVC and the stage it runs).
3. `dvc exp run -S data.normal_classes=[D]`: a one-class experiment end to end (every stage but the
   download reruns).
Results: bench/results/pipeline_speed-<device>.json (pipeline_speed-<device>-<REV>.json for --rev,
to compare an earlier commit on the same day and machine) and a table on stdout.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

from aepipe.atomic import write_json
from provenance import REPO, RESULTS, command_env, machine

# Not counted as "after training": the judge trains too, and is run-cached across autoencoder
# experiments.
TRAINING_STAGES = {"check_params", "download", "train", "judge"}


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def torch_and_device() -> dict:
    """Asked of a child process: a parent holding torch would count its memory in every child's peak
    (a forked child starts with its parent's resident pages)."""
    probe = (
        "import json, torch; from aepipe.devices import resolve_device; from aepipe.params "
        "import load_params; device = resolve_device(load_params('params.yaml').train.device); "
        "print(json.dumps({'torch': torch.__version__, 'device': device.type, "
        "'gpu': torch.cuda.get_device_name() if device.type == 'cuda' else None}))"
    )
    return json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    )


def timed(command: list[str], cwd: Path) -> dict:
    """Wall seconds and peak resident memory (MB) of `command` and of every process it waited for:
    the larger of DVC's own (about 150 MB) and the stage's."""
    env = command_env()
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        # wait4's usage covers the child and the descendants it waited for: DVC and the stage it
        # ran.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            sys.exit(
                f"bench: {' '.join(command)} failed:\n{log.read().decode(errors='replace')[-3000:]}"
            )
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--digit", type=int, default=3, help="normal digit of the one-class experiment"
    )
    parser.add_argument("--rev", help="measure this commit instead of HEAD")
    args = parser.parse_args()

    versions = torch_and_device()
    if git("status", "--porcelain", "--untracked-files=no") and not args.rev:
        print("bench: uncommitted changes are not measured; this measures HEAD", file=sys.stderr)
    commit = git("rev-parse", "--short", f"{args.rev or 'HEAD'}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="aepipe-bench-") as tmp:
        project = Path(tmp) / "aepipe"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(project)], check=True)
        subprocess.run(["git", "checkout", "--quiet", commit], cwd=project, check=True)
        stages = list(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
        print("dvc repro (whole pipeline) ...", flush=True)
        whole = timed(["dvc", "repro"], project)
        per_stage = {}
        for stage in stages:
            print(f"dvc repro -f -s {stage} ...", flush=True)
            per_stage[stage] = timed(["dvc", "repro", "-f", "-s", stage], project)
        print(f"dvc exp run -S data.normal_classes=[{args.digit}] ...", flush=True)
        one_class = timed(
            ["dvc", "exp", "run", "-S", f"data.normal_classes=[{args.digit}]"], project
        )

    outside_training = [name for name in stages if name not in TRAINING_STAGES]
    report = {
        "date": date.today().isoformat(),
        "machine": machine(versions["gpu"]),
        "torch": versions["torch"],
        "commit": commit,
        "command": "python bench/pipeline_speed.py",
        "whole_pipeline": whole,
        "stages": per_stage,
        "stages_outside_training_seconds": round(
            sum(per_stage[name]["seconds"] for name in outside_training), 2
        ),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in [whole, *per_stage.values()]),
        "one_class_experiment": {"digit": args.digit, **one_class},
    }
    write_json(
        RESULTS / f"pipeline_speed-{versions['device']}{'-' + args.rev if args.rev else ''}.json",
        report,
    )
    print("\n| run | seconds | peak RSS MB |\n|---|---|---|")
    print(f"| `dvc repro`, whole pipeline | {whole['seconds']} | {whole['peak_rss_mb']:,.0f} |")
    for name, run in per_stage.items():
        print(f"| `dvc repro -f -s {name}` | {run['seconds']} | {run['peak_rss_mb']:,.0f} |")
    print(
        f"| the {len(outside_training)} stages after training, together | "
        f"{report['stages_outside_training_seconds']} | |"
    )
    print(
        f"| one-class `dvc exp run` (digit {args.digit}) | {one_class['seconds']} | "
        f"{one_class['peak_rss_mb']:,.0f} |"
    )


if __name__ == "__main__":
    main()
