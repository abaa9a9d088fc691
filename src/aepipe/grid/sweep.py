"""The experiments of a grid: `dvc exp run -S` overrides, their sweeps (`a=1,2`, `range()`,
`choice()`) expanded by DVC's own code, so a grid means what the same `-S` means to DVC."""

import hashlib

from dvc.utils.cli_parse import to_path_overrides
from dvc.utils.hydra import get_hydra_sweeps

from aepipe.errors import AepipeError

PARAMS_FILE = "params.yaml"  # DVC's default: overrides without a file name go to it


def expand(overrides: list[str]) -> list[tuple[str, ...]]:
    """Every experiment of the grid as its `-S` overrides, one value each: the product of the
    sweeps, in DVC's order, each once."""
    try:
        sweeps = get_hydra_sweeps(to_path_overrides(overrides))
    except Exception as error:  # DVC reports a bad sweep with hydra's or its own exception types
        raise AepipeError(
            f"-S {' '.join(overrides)}: {error} (expected dvc exp run's syntax, e.g. "
            "-S train.lr=1e-3,1e-4 -S 'seed=range(1,4)')"
        ) from error
    experiments = [
        tuple(
            override if path == PARAMS_FILE else f"{path}:{override}"
            for path, chosen in sweep.items()
            for override in chosen
        )
        for sweep in sweeps
    ]
    return list(dict.fromkeys(experiments))  # a value swept twice is one experiment


def experiment_name(baseline: str, workspace_tree: str, overrides: tuple[str, ...]) -> str:
    """The same name for the same experiment, whoever asks and however often: what it is based on
    (the commit and the workspace's files) and its overrides. A grid started again finds by it the
    experiments already pushed."""
    identity = "\0".join((baseline, workspace_tree, *overrides))
    return "grid-" + hashlib.sha256(identity.encode()).hexdigest()[:10]
