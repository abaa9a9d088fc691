"""Stage check_params: refuse a bad params.yaml before any other stage runs.

DVC deletes a stage's outputs before running its command, so a stage that found its own params bad
would already have lost the last good run's outputs. Every other stage depends on this one's output,
so DVC runs it first and stops the pipeline here, with everything else still in place. Its output is
the same for every valid params.yaml on one kind of machine: passing the check never makes the
stages after it rerun. It names the machine's CPU numerics (aepipe.cpu_numerics): on another kind,
every stage's deps differ, so DVC's run cache restores only what a machine of the same kind
computed. DVC runs this stage every time (always_changed in dvc.yaml, which also keeps it out of the
run cache). A folder dataset's classes and validation images are counted from its file names, so
that data.normal_classes and the figures' images are checked against the folder too.
"""

from pathlib import Path

from aepipe.atomic import atomic_path
from aepipe.cpu_numerics import numerics_key
from aepipe.data.folder import outline
from aepipe.errors import AepipeError
from aepipe.params import check_against_classes, fit_validation_set, load_params
from aepipe.run_guard import RESTORE, run_guarded

CHECKED = "data/params_checked.txt"
# a folder dataset: the download stage reads it (stages/download.py, dvc.yaml)
IMAGES = "data/images"


def main() -> None:
    try:
        check("params.yaml")
    except AepipeError as error:
        raise AepipeError(f"{error}\n{RESTORE}") from None
    with atomic_path(CHECKED) as tmp:
        tmp.write_text(
            "params.yaml passed the schema of src/aepipe/params.py\nCPU numerics: "
            f"{numerics_key()}\n"
        )


def check(path: str) -> None:
    params = load_params(path)
    if params.data.dataset == "folder" and Path(IMAGES).is_dir():
        found = outline(IMAGES, params.data.folder.val_fraction, params.data.tile is not None)
        check_against_classes(params, found.names, found.inspection, found.labelled)
        if found.val_images:
            fit_validation_set(params, found.val_images)
    if params.train.device == "cuda":
        # torch takes seconds to import: only when asked for
        from aepipe.devices import resolve_device

        resolve_device("cuda")  # refuses it where no GPU is available


if __name__ == "__main__":
    run_guarded(main)
