"""One experiment of a grid, as a Dask worker runs it: a fresh clone of the captured workspace, the
run cache pulled from the DVC remote (stages computed anywhere before are restored, not rerun),
`dvc exp run`, the results pushed (the data first, the experiment's git ref last, so a ref in the
remote always has its data), and the clone removed."""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aepipe.dvc_files import metrics_files
from aepipe.grid.clusters import scratch_dir
from aepipe.grid.repository import git, pushed_experiments
from aepipe.nested import dotted_leaves

GIT_REMOTE = "origin"  # in the worker's clone: the remote it was cloned from
ERROR_LINES = 15  # of a failed experiment's output, returned to the client


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    overrides: tuple[str, ...]
    git_url: str
    baseline: str  # the commit the experiment is based on: the user's HEAD
    workspace: str  # the captured workspace, a commit on top of the baseline
    workspace_ref: str  # where the git remote holds it
    dvc_remote: str
    dvc_remote_config: dict = field(default_factory=dict)
    # The thread counts the experiment's stages see: the client's own (OMP_NUM_THREADS and
    # MKL_NUM_THREADS, None where unset), or --threads-per-task's.
    threads: dict = field(default_factory=dict)
    force: bool = False  # run it even if the remote holds it, and replace it there


def run_experiment(spec: ExperimentSpec) -> dict:
    """Run and push one experiment; its status ("done", "pushed before" or "failed"), the stages
    it ran and its metrics. Raises when the remotes cannot be reached (Dask retries it)."""
    if not spec.force and spec.name in pushed_experiments(spec.git_url, spec.baseline):
        return report(spec, "pushed before")  # a retry whose first try pushed, then was lost
    with tempfile.TemporaryDirectory(prefix=f"aepipe-{spec.name}-", dir=scratch_dir()) as scratch:
        clone = Path(scratch) / "repo"
        clock = PhaseClock()
        check_out(spec, clone)
        use_dvc_remote(clone, spec.dvc_remote, spec.dvc_remote_config)
        clock.lap("clone")
        env = experiment_env(spec.threads)
        pairs = [arg for override in spec.overrides for arg in ("-S", override)]
        # --pull: the remote's run cache, and each restored stage's outputs as it is restored (a
        # plain `dvc fetch --run-cache` brings the run cache's entries, not their outputs)
        ran = dvc(clone, env, "exp", "run", "--pull", "--name", spec.name, *pairs, check=False)
        clock.lap("run")
        if ran.returncode != 0:
            output = (ran.stdout + ran.stderr).strip().splitlines()
            return report(spec, "failed", error="\n".join(output[-ERROR_LINES:]))
        dvc(clone, env, "push", "--run-cache")
        force = ["--force"] if spec.force else []
        dvc(clone, env, "exp", "push", "--no-cache", *force, GIT_REMOTE, spec.name)
        clock.lap("push")
        return report(
            spec,
            "done",
            ran=ran_stages(ran.stdout),
            metrics=read_metrics(clone),
            seconds=clock.seconds,
        )


class PhaseClock:
    """Seconds per phase of a task (the clone, `dvc exp run --pull`, the pushes): the grid's
    overhead beside the experiment itself."""

    def __init__(self):
        self.seconds = {}
        self._since = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._since, 2)
        self._since = now


def report(spec: ExperimentSpec, status: str, **details) -> dict:
    return {"name": spec.name, "overrides": list(spec.overrides), "status": status, **details}


def check_out(spec: ExperimentSpec, clone: Path) -> None:
    """The captured workspace's files, on the baseline commit: the experiment is based on the
    user's HEAD and holds the user's uncommitted changes, as `dvc exp run --queue` makes it."""
    git(Path(clone.parent), "clone", "-q", "--no-checkout", spec.git_url, str(clone))
    git(clone, "fetch", "-q", GIT_REMOTE, spec.workspace_ref)
    git(clone, "checkout", "-q", "--detach", spec.workspace)
    git(clone, "reset", "-q", "--soft", spec.baseline)


def use_dvc_remote(clone: Path, name: str, config: dict) -> None:
    """The client's default DVC remote as the clone's (its .dvc/config.local)."""
    from dvc.config import Config

    with Config(str(clone / ".dvc")).edit("local") as local:
        local["remote"][name] = dict(config)
        local["core"]["remote"] = name


def experiment_env(threads: dict) -> dict:
    """The worker's environment, with the thread counts the client asked for: a Dask worker's own
    (its nanny sets OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1) would put the experiment on another
    side of the CPU numerics boundary (aepipe.cpu_numerics) than `dvc exp run` on the client, and
    nothing computed there would be restored here, nor the other way."""
    env = dict(os.environ)
    for name, value in threads.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python`
    env.setdefault("DVC_NO_ANALYTICS", "1")
    for role in ("AUTHOR", "COMMITTER"):  # DVC commits the experiment
        env.setdefault(f"GIT_{role}_NAME", "aepipe grid")
        env.setdefault(f"GIT_{role}_EMAIL", "aepipe-grid@localhost")
    return env


def dvc(clone: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=clone, env=env, capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def ran_stages(output: str) -> list[str]:
    """The stages `dvc exp run` ran (not those restored from the run cache)."""
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]


def read_metrics(clone: Path) -> dict:
    """Every metrics file dvc.yaml declares, as its numbers by their key (as `dvc exp show`
    names its columns)."""
    metrics = {}
    for name in metrics_files(clone):
        if (clone / name).exists():
            metrics.update(dotted_leaves(json.loads((clone / name).read_text())))
    return metrics
