"""The client's side of `aepipe grid`: capture the workspace, skip what the remote already holds,
run the rest on the cluster with a line per experiment as it lands, and pull the results."""

import os
import subprocess
import sys
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from aepipe.cpu_numerics import THREAD_VARIABLES
from aepipe.errors import AepipeError
from aepipe.grid.clusters import connect
from aepipe.grid.repository import (
    WORKSPACE_REFS,
    capture_workspace,
    git,
    pushed_experiments,
    remote_url,
)
from aepipe.grid.sweep import expand, experiment_name
from aepipe.grid.task import ExperimentSpec, run_experiment

# Task retries on an error of the remotes (a lost worker is rescheduled by Dask itself, up to
# distributed.scheduler.allowed-failures times).
RETRIES = 2
BAR = 20


@dataclass(frozen=True)
class GridOptions:
    """A grid (aepipe grid's options): the -S sweeps, where it runs (a LocalCluster of `jobs`
    workers, a running scheduler, or a cluster file), and how."""

    overrides: list[str]
    metrics: tuple[str, ...]  # printed as each experiment lands
    jobs: int = 1
    scheduler: str | None = None
    cluster: Path | None = None
    git_remote: str = "origin"
    force: bool = False
    threads_per_task: int | None = None
    gpus_per_task: int = 0


def run_grid(args: GridOptions) -> int:
    """Run the grid; the number of experiments that failed."""
    repo = Path(git(Path.cwd(), "rev-parse", "--show-toplevel"))
    specs = grid_specs(repo, args)
    pushed = set() if args.force else pushed_experiments(specs[0].git_url, specs[0].baseline)
    todo = [spec for spec in specs if spec.name not in pushed]
    print(f"{len(specs)} experiments: {len(specs) - len(todo)} pushed before, {len(todo)} to run")
    results = on_cluster(todo, args) if todo else []
    failed = [result for result in results if result["status"] == "failed"]
    landed = [spec.name for spec in specs if spec.name not in {r["name"] for r in failed}]
    pull(repo, args.git_remote, landed, force=args.force)
    print(f"{len(landed)} experiments in `dvc exp show`, {len(failed)} failed")
    for result in failed:
        overrides = " ".join(f"-S {override}" for override in result["overrides"])
        print(f"failed: {result['name']} ({overrides}):\n{result['error']}", file=sys.stderr)
    return len(failed)


def grid_specs(repo: Path, args: GridOptions) -> list[ExperimentSpec]:
    """Every experiment of the grid, on the workspace captured and pushed for the workers."""
    grid = expand(args.overrides)
    git_url = remote_url(repo, args.git_remote)
    baseline, tree, workspace = capture_workspace(repo)
    workspace_ref = f"{WORKSPACE_REFS}/{workspace}"
    git(repo, "push", "-q", args.git_remote, f"{workspace}:{workspace_ref}")
    remote, config = default_dvc_remote(repo)
    return [
        ExperimentSpec(
            name=experiment_name(baseline, tree, overrides),
            overrides=overrides,
            git_url=git_url,
            baseline=baseline,
            workspace=workspace,
            workspace_ref=workspace_ref,
            dvc_remote=remote,
            dvc_remote_config=config,
            threads=thread_counts(args.threads_per_task),
            force=args.force,
        )
        for overrides in grid
    ]


def thread_counts(per_task: int | None) -> dict:
    """What the experiments' stages get as OMP_NUM_THREADS and MKL_NUM_THREADS: --threads-per-task,
    else this shell's values (unset stays unset), so that the grid computes what `dvc exp run`
    computes here."""
    if per_task:
        return dict.fromkeys(THREAD_VARIABLES, str(per_task))
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def default_dvc_remote(repo: Path) -> tuple[str, dict]:
    """The default DVC remote's name and options (.dvc/config and config.local merged): where the
    workers fetch the run cache from and push to."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        name = dvc_repo.config["core"].get("remote")
        if not name:
            raise AepipeError(
                "no default DVC remote: the workers share the run cache and the experiments' data "
                "through it (make setup sets one; or dvc remote default NAME)"
            )
        return name, dict(dvc_repo.config["remote"][name])


def on_cluster(specs: list[ExperimentSpec], args: GridOptions) -> list[dict]:
    """Each experiment a task; a line for each as it lands."""
    from distributed import as_completed

    with ExitStack() as stack:
        client = connect(stack, args.scheduler, args.cluster, args.jobs)
        resources = {"GPU": args.gpus_per_task} if args.gpus_per_task else None
        futures = {
            client.submit(
                run_experiment,
                spec,
                key=f"{spec.name}-{uuid.uuid4().hex[:8]}",
                retries=RETRIES,
                resources=resources,
            ): spec
            for spec in specs
        }
        results = []
        for landed, future in enumerate(as_completed(futures), 1):
            results.append(outcome(future, futures[future]))
            print(progress(landed, len(specs), results[-1], args.metrics), flush=True)
        return results


def outcome(future, spec: ExperimentSpec) -> dict:
    """The task's report, or its error (a lost worker too often, the remotes out of reach)."""
    try:
        return future.result()
    except Exception as error:  # whatever the task or Dask raised: reported, the grid goes on
        return {
            "name": spec.name,
            "overrides": list(spec.overrides),
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
        }


def progress(landed: int, total: int, result: dict, metrics: tuple[str, ...]) -> str:
    filled = BAR * landed // total
    shown = [
        f"{key} {result['metrics'][key]:.6g}"
        for key in metrics
        if isinstance(result.get("metrics", {}).get(key), int | float)
    ]
    ran = f"ran {len(result['ran'])} stages" if "ran" in result else ""
    phases = ", ".join(f"{phase} {s:.1f} s" for phase, s in result.get("seconds", {}).items())
    return " · ".join(
        part
        for part in (
            f"[{'#' * filled}{'-' * (BAR - filled)}] {landed}/{total} {result['name']} "
            f"{result['status']}: {' '.join(result['overrides'])}",
            *shown,
            ran,
            phases,
        )
        if part
    )


def pull(repo: Path, git_remote: str, names: list[str], force: bool) -> None:
    """The experiments and their data from the remotes, into the user's repository."""
    if not names:
        return
    command = [sys.executable, "-m", "dvc", "exp", "pull", *(["-f"] if force else []), git_remote]
    done = subprocess.run([*command, *names], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise AepipeError(
            f"dvc exp pull {git_remote}: {done.stderr.strip()} (the experiments are in the "
            f"remotes; pull them later with `dvc exp pull {git_remote} {' '.join(names)}`)"
        )
