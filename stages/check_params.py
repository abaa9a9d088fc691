"""Stage check_params: refuse a bad params.yaml before any other stage runs.

DVC deletes a stage's outputs before running its command, so a stage that found its own params bad
would already have lost the last good run's outputs. Every other stage depends on this one's output,
so DVC runs it first and stops the pipeline here, with everything else still in place. Its output is
the same for every valid params.yaml: passing the check never makes the stages after it rerun.
"""

from aepipe.atomic import atomic_path
from aepipe.errors import AepipeError, exit_on_error
from aepipe.params import load_params

CHECKED = "data/params_checked.txt"
# A refused `dvc exp run -S` leaves its value in params.yaml, and DVC's restore can leave git's index
# believing the file unchanged, so that `git checkout params.yaml` does nothing (see the Makefile).
RESTORE = "to go back to the committed params.yaml (a refused `dvc exp run -S` leaves its value in it): make restore-params"


def main() -> None:
    try:
        check("params.yaml")
    except AepipeError as error:
        raise AepipeError(f"{error}\n{RESTORE}") from None
    with atomic_path(CHECKED) as tmp:
        tmp.write_text("params.yaml passed the schema of src/aepipe/params.py\n")


def check(path: str) -> None:
    params = load_params(path)
    if params.train.device == "cuda":
        from aepipe.devices import resolve_device  # torch takes seconds to import: only when asked for

        resolve_device("cuda")  # refuses it where no GPU is available


if __name__ == "__main__":
    exit_on_error(main)
