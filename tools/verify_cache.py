"""Find what the DVC cache must not hand out: objects whose bytes are not their md5 (a flipped byte:
DVC does not hash an object again when it checks it out), and results filed under params they were
not computed with: run-cache entries and dvc.lock stages whose recorded params disagree with what
the stage itself wrote into its outputs (the training's epochs against the steps it logged, and the
like).

    python tools/verify_cache.py           # list them; exit 1 if any (`make verify-cache`)
    python tools/verify_cache.py --remove  # and delete those objects and entries (`REMOVE=1`)
    python tools/verify_cache.py --remote  # the default DVC remote's objects (`REMOTE=1`)

`make share` runs the listing first, so nothing corrupt or poisoned is pushed to the team. After a
removal, `dvc pull` or `dvc repro` brings the objects back. A corrupt object in the remote (its
storage's fault) is refused by a `dvc pull` with `verify` (make setup's remote has it), which
deletes a folder remote's copy; an S3 remote's stays, and `dvc push` skips an object the remote
holds: `--remote --remove` deletes it (every object is read back to be hashed), then `make share`
from a clone with the good object pushes it again. A poisoned dvc.lock stage is not
rewritten: `dvc repro <stage>` (after `dvc exp run` of the right params) is.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import yaml

from aepipe.nested import dotted_leaves

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
        params.update(dotted_leaves(values))
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


def corrupt_objects(objects: Path) -> list[Path]:
    """The files of a DVC cache (files/md5/ab/cdef...) whose md5 is not their name."""
    found = []
    for path in sorted(objects.glob("*/*")):
        with open(path, "rb") as file:
            md5 = hashlib.file_digest(file, "md5").hexdigest()
        if md5 != path.parent.name + path.name.removesuffix(".dir"):
            found.append(path)
    return found


def corrupt_remote_objects(odb) -> list[str]:
    """The objects of a DVC remote (`repo.cloud.get_remote_odb()`) whose md5 is not their name,
    each read back from the remote."""
    found = []
    for oid in sorted(odb.all()):
        path = odb.oid_to_path(oid)
        with odb.fs.open(path, "rb") as file:
            md5 = hashlib.file_digest(file, "md5").hexdigest()
        if md5 != oid.removesuffix(".dir"):
            found.append(path)
    return found


def check_remote(repo, remove: bool) -> None:
    odb = repo.cloud.get_remote_odb(command="verify")
    corrupt = corrupt_remote_objects(odb)
    for path in corrupt:
        print(f"{path}: a corrupt object in the DVC remote (its bytes are not its md5)")
        if remove:
            odb.fs.remove(path)
    if not corrupt:
        print("the DVC remote's objects agree with their md5")
    elif remove:
        print(f"removed {len(corrupt)} corrupt remote objects; make share pushes good copies again")
    else:
        sys.exit(
            f"{len(corrupt)} corrupt objects in the DVC remote; remove them: REMOTE=1 REMOVE=1"
        )


def _field(data: dict, dotted: str) -> object:
    for name in dotted.split("."):
        data = data.get(name) if isinstance(data, dict) else None
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--remove",
        action="store_true",
        help="delete the corrupt objects and poisoned run-cache entries",
    )
    parser.add_argument(
        "--remote", action="store_true", help="check the default DVC remote's objects instead"
    )
    args = parser.parse_args()
    from dvc.repo import Repo  # seconds to import: after --help

    repo = Repo(".")
    if args.remote:
        check_remote(repo, args.remove)
        return
    objects = repo.cache.local

    def read_object(md5: str | None) -> bytes | None:
        path = Path(objects.oid_to_path(md5)) if md5 and not md5.endswith(".dir") else None
        return path.read_bytes() if path and path.is_file() else None

    corrupt = corrupt_objects(Path(objects.path))
    poisoned = []
    for path in sorted(Path(repo.cache.legacy.path, "runs").glob("*/*/*")):
        if found := disagreements(yaml.safe_load(path.read_text()) or {}, read_object):
            poisoned.append((path, found))
    lock = Path("dvc.lock")
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.exists() else {}
    poisoned_lock = [
        (f"dvc.lock: stage {name}", found)
        for name, stage in stages.items()
        if (found := disagreements(stage, read_object))
    ]
    for path in corrupt:
        print(f"{path}: a corrupt cache object (its bytes are not its md5)")
    for where, found in [*poisoned, *poisoned_lock]:
        print(f"{where}:\n" + "\n".join(f"  {line}" for line in found))
    if args.remove:
        for path in [*corrupt, *(path for path, _ in poisoned)]:
            path.unlink()
        print(
            f"removed {len(corrupt)} corrupt objects and {len(poisoned)} run-cache entries; dvc "
            "pull or dvc repro brings what is needed back"
        )
    if not (corrupt or poisoned or poisoned_lock):
        print("cache objects, run-cache entries and dvc.lock stages agree with their outputs")
    elif poisoned_lock or not args.remove:
        sys.exit(
            f"{len(corrupt)} corrupt cache objects, {len(poisoned)} run-cache entries and "
            f"{len(poisoned_lock)} dvc.lock stages filed under params they were not computed with"
            + ("" if args.remove else "; remove them: make verify-cache REMOVE=1")
        )


if __name__ == "__main__":
    main()
