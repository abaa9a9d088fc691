"""Every stage's main runs through `run_guarded`: the stage fails, and DVC records nothing, if
params.yaml or one of the stage's deps changed while it ran, and it refuses to start on an input
that is not what dvc.lock records.

DVC reads params.yaml and hashes the deps only after a stage's command exits, and files the result
under what it finds then, in dvc.lock and in the run cache that `make share` pushes to the team. A
second `dvc exp run -S` in the same workspace writes its value into params.yaml before DVC's lock
refuses it, so without this check the first run's model would be filed under the second run's params
(treeverse/dvc #5750, #8516). The whole of params.yaml is compared, not only the stage's keys:
`dvc exp run` commits the workspace's params.yaml with the experiment, so any change would be filed
with it. Outside DVC (no $DVC_STAGE) only params.yaml is compared.
"""

import hashlib
import os
from pathlib import Path

from aepipe.dvc_files import declared, locked_md5s
from aepipe.entrypoint import exit_on_error
from aepipe.errors import AepipeError
from aepipe.stage_inputs import changes, snapshot

PARAMS = "params.yaml"
# A refused `dvc exp run -S` leaves its value in params.yaml, and DVC's restore can leave git's
# index believing the file unchanged, so that `git checkout params.yaml` does nothing (see the
# Makefile).
RESTORE = (
    "to go back to the committed params.yaml (a refused `dvc exp run -S` leaves its value in "
    "it): make restore-params"
)
SIDE_BY_SIDE = (
    "to run experiments side by side: `dvc exp run --queue -S ...` then `dvc queue start -j 2`, "
    "or separate clones sharing the remote"
)


def run_guarded(main) -> None:
    deps = stage_deps(os.environ.get("DVC_STAGE"))

    def checked_main() -> None:
        if mismatched := not_as_locked(deps):
            raise AepipeError(corrupt_message(mismatched))
        before = snapshot(PARAMS, deps)
        main()
        if changed := changes(before, snapshot(PARAMS, deps)):
            raise AepipeError(changed_message(os.environ.get("DVC_STAGE", "this stage"), changed))

    exit_on_error(checked_main)


def not_as_locked(deps: list[str], root: str | os.PathLike = ".") -> list[str]:
    """Each dep file that another stage made whose md5 is not the one dvc.lock records for it: a
    corrupt DVC cache object checked out (DVC does not hash an object again when it checks it out),
    or an output changed by hand. Directories are left to DVC."""
    locked = locked_md5s(root) if deps else {}
    found = []
    for dep in deps:
        path = Path(root) / dep
        if dep not in locked or not path.is_file():
            continue
        with open(path, "rb") as file:
            md5 = hashlib.file_digest(file, "md5").hexdigest()
        if md5 != locked[dep]:
            found.append(f"{dep}: md5 {md5}, dvc.lock records {locked[dep]}")
    return found


def corrupt_message(mismatched: list[str]) -> str:
    return "\n".join(
        [
            "inputs that are not what dvc.lock records (a corrupt DVC cache object, or a file "
            "changed by hand); nothing was computed from them:",
            *(f"  {line}" for line in mismatched),
            "find and remove corrupt cache objects: make verify-cache REMOVE=1; then dvc pull "
            "(from the remote) or dvc repro (computes them again)",
        ]
    )


def stage_deps(stage: str | None) -> list[str]:
    """The deps dvc.yaml lists for `stage` (DVC's $DVC_STAGE, run from the project's root)."""
    return declared(stage, "deps") if stage else []


def changed_message(stage: str, changed: list[str]) -> str:
    return "\n".join(
        [
            f"{stage}: its inputs changed while it ran (another `dvc exp run -S`, or an edit); "
            "its result is not recorded, so that DVC does not file it under values it was not "
            "computed with:",
            *(f"  {line}" for line in changed),
            RESTORE,
            "then run the experiment again with the values you meant (dvc exp run -S ...)",
            SIDE_BY_SIDE,
        ]
    )
