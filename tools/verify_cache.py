"""Find results filed under params they were not computed with: run-cache entries and dvc.lock stages
whose recorded params disagree with what the stage itself wrote into its outputs (the training's
epochs against the steps it logged, and the like).

    python tools/verify_cache.py            # list them; exit 1 if any (`make verify-cache`)
    python tools/verify_cache.py --remove   # and delete the run-cache entries (`make verify-cache REMOVE=1`)

`make share` runs the listing first, so a poisoned entry is never pushed to the team. A poisoned
dvc.lock stage is not rewritten: `dvc repro <stage>` (after `dvc exp run` of the right params) is.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

# What each stage writes of its own params: (script in the stage's cmd, output, field, param key).
ECHOED_PARAMS = [
    ("stages/train.py", "data/metrics/train.json", "step", "train.epochs"),
    ("stages/train.py", "reports/train.json", "epochs", "train.epochs"),
    ("stages/train.py", "reports/train.json", "noise_std", "train.noise_std"),
    ("stages/threshold.py", "reports/threshold.json", "per_batch.k", "threshold.k"),
]


def disagreements(entry: dict, read_object) -> list[str]:
    """For one recorded stage (a run-cache entry or a dvc.lock stage), each echoed field whose value
    is not the recorded param's. `read_object(md5)` gives an output's bytes, or None if absent."""
    params = {}
    for values in (entry.get("params") or {}).values():
        params.update(_leaves(values))
    outs = {out["path"]: out.get("md5") for out in entry.get("outs") or []}
    found = []
    for script, output, field, key in ECHOED_PARAMS:
        if script not in entry.get("cmd", "") or output not in outs or key not in params:
            continue
        data = read_object(outs[output])
        if data is None:
            continue
        value = _field(json.loads(data), field)
        if value != params[key]:
            found.append(f"{key} = {params[key]!r} recorded, but {output} says {field} = {value!r}")
    return found


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def _field(data: dict, dotted: str) -> object:
    for name in dotted.split("."):
        data = data.get(name) if isinstance(data, dict) else None
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--remove", action="store_true", help="delete the poisoned run-cache entries")
    args = parser.parse_args()
    from dvc.repo import Repo  # seconds to import: after --help

    repo = Repo(".")
    objects = repo.cache.local

    def read_object(md5: str | None) -> bytes | None:
        path = Path(objects.oid_to_path(md5)) if md5 and not md5.endswith(".dir") else None
        return path.read_bytes() if path and path.is_file() else None

    poisoned = []
    for path in sorted(Path(repo.cache.legacy.path, "runs").glob("*/*/*")):
        if found := disagreements(yaml.safe_load(path.read_text()) or {}, read_object):
            poisoned.append((path, found))
    lock = Path("dvc.lock")
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.exists() else {}
    poisoned_lock = [(f"dvc.lock: stage {name}", found) for name, stage in stages.items()
                     if (found := disagreements(stage, read_object))]
    for where, found in [*poisoned, *poisoned_lock]:
        print(f"{where}:\n" + "\n".join(f"  {line}" for line in found))
    if args.remove:
        for path, _ in poisoned:
            path.unlink()
        print(f"removed {len(poisoned)} run-cache entries")
    checked = "run-cache entries and dvc.lock stages agree with their outputs"
    if not (poisoned or poisoned_lock):
        print(checked)
    elif poisoned_lock or not args.remove:
        sys.exit(f"{len(poisoned)} run-cache entries and {len(poisoned_lock)} dvc.lock stages are filed under params "
                 f"they were not computed with" + ("" if args.remove else "; remove the entries: make verify-cache REMOVE=1"))


if __name__ == "__main__":
    main()
