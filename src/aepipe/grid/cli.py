"""`aepipe grid`: a DVC experiment grid on a Dask cluster (docs/grid.md).

    aepipe grid -S train.lr=1e-3,1e-4 -S 'seed=range(1,4)' [-j N | --scheduler ADDRESS |
                --cluster FILE] [--git-remote origin] [--force] [--threads-per-task N]
                [--gpus-per-task N] [--metric KEY]...
    aepipe grid --cluster FILE --render

The grid is the product of the -S sweeps, in `dvc exp run`'s syntax. The workspace (uncommitted
changes and untracked files too, as `dvc exp run --queue` takes them) is pushed to the git remote
as a commit under refs/aepipe/grid/; each experiment runs on a worker in a fresh clone of it, from
the run cache of the default DVC remote, and is pushed back (`dvc exp push`); finished, the grid's
experiments are pulled here, so `dvc exp show` lists them as if they had run here. An experiment
already in the git remote is not run again (--force: run it again; its stages are restored from
the run cache). Exit status: the number of experiments that failed (at most 125), 2 for a mistake
in the command.
"""

import argparse
import sys
from pathlib import Path

from aepipe.errors import AepipeError, require_dask

HEADLINE = ("val_mse", "threshold")  # the metrics printed as each experiment lands


def add_command(commands) -> None:
    """`aepipe grid` on the `aepipe` command's subparsers."""
    grid = commands.add_parser(
        "grid",
        help="a DVC experiment grid on a Dask cluster (the grid extra)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid.set_defaults(run=grid_command)
    grid.add_argument(
        "-S",
        "--set-param",
        dest="overrides",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="a param's value or sweep, as dvc exp run -S takes it",
    )
    where = grid.add_mutually_exclusive_group()
    where.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="workers of a LocalCluster on this machine (default 1), as dvc queue start -j N",
    )
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler's address")
    where.add_argument("--cluster", type=Path, metavar="FILE", help="a cluster file (docs/grid.md)")
    grid.add_argument("--render", action="store_true", help="print what --cluster would submit")
    grid.add_argument("--git-remote", default="origin", help="where workers clone from and push to")
    grid.add_argument("--force", action="store_true", help="run experiments already pushed again")
    grid.add_argument("--threads-per-task", type=int, metavar="N", help="OMP/MKL threads per task")
    grid.add_argument("--gpus-per-task", type=int, default=0, metavar="N", help="GPUs per task")
    grid.add_argument(
        "--metric", action="append", metavar="KEY", help=f"shown as experiments land ({HEADLINE})"
    )


def grid_command(args: argparse.Namespace) -> None:
    require_dask("aepipe grid")
    from aepipe.grid.clusters import render
    from aepipe.grid.running import GridOptions, run_grid

    if args.render:
        if not args.cluster:
            raise AepipeError("--render shows what a --cluster FILE submits; give one")
        print(render(args.cluster))
        return
    if not args.overrides:
        raise AepipeError("no -S overrides: a grid needs at least one, e.g. -S train.lr=1e-3,1e-4")
    options = GridOptions(
        args.overrides,
        tuple(args.metric or HEADLINE),
        jobs=args.jobs,
        scheduler=args.scheduler,
        cluster=args.cluster,
        git_remote=args.git_remote,
        force=args.force,
        threads_per_task=args.threads_per_task,
        gpus_per_task=args.gpus_per_task,
    )
    failed = run_grid(options)
    sys.exit(min(failed, 125))
