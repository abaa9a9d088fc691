"""Where a grid runs: a LocalCluster of N workers (as `dvc queue start -j N`), a running scheduler,
or a cluster described in a small YAML file (docs/grid.md): a batch system through dask-jobqueue
or Kubernetes through dask-kubernetes' operator.

    kind: slurm        # slurm | pbs | sge | lsf | kubernetes
    jobs: 4            # workers to start
    options: {...}     # dask_jobqueue.SLURMCluster(...) / dask_kubernetes' make_cluster_spec(...)
"""

from contextlib import ExitStack
from pathlib import Path

import yaml

from aepipe.errors import AepipeError

JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
KINDS = [*JOBQUEUE, "kubernetes"]


def connect(stack: ExitStack, scheduler: str | None, cluster_file: Path | None, jobs: int = 1):
    """A Dask client (closed with `stack`) of the running `scheduler`, else of the cluster that
    `cluster_file` describes, else of a LocalCluster of `jobs` workers; the dashboard's address
    printed."""
    from distributed import Client

    if scheduler:
        client = stack.enter_context(Client(scheduler))
    else:
        cluster = file_cluster(cluster_file) if cluster_file else local_cluster(jobs)
        client = stack.enter_context(Client(stack.enter_context(cluster)))
    print(f"Dask dashboard: {client.dashboard_link}", flush=True)
    return client


def scratch_dir() -> str | None:
    """The Dask worker's own directory (removed with the worker), else the system's temporary
    one."""
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except ValueError:  # not on a worker
        return None


def local_cluster(workers: int, gpus_per_worker: int = 0):
    """N workers of one task each on this machine; the dashboard on a free port."""
    from distributed import LocalCluster

    resources = {"GPU": gpus_per_worker} if gpus_per_worker else None
    return LocalCluster(
        n_workers=workers, threads_per_worker=1, dashboard_address=":0", resources=resources
    )


def read_cluster_file(path: Path) -> tuple[str, int, dict]:
    """(kind, jobs, options) of a cluster file, checked."""
    described = yaml.safe_load(path.read_text()) or {}
    kind, jobs, options = described.get("kind"), described.get("jobs", 1), described.get("options")
    if kind not in KINDS:
        raise AepipeError(f"{path}: kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(jobs, int) or jobs < 1:
        raise AepipeError(f"{path}: jobs {jobs!r}; expected the number of workers to start, ≥ 1")
    if not isinstance(options, dict):
        raise AepipeError(f"{path}: options {options!r}; expected a mapping of the cluster's")
    return kind, jobs, options


def file_cluster(path: Path):
    """The cluster a file describes, scaled to its jobs."""
    kind, jobs, options = read_cluster_file(path)
    if kind == "kubernetes":
        from dask_kubernetes.operator import KubeCluster

        cluster = KubeCluster(custom_cluster_spec=kubernetes_spec(path, options, jobs))
    else:
        cluster = jobqueue_cluster(path, kind, options)
    cluster.scale(jobs)
    return cluster


def jobqueue_cluster(path: Path, kind: str, options: dict):
    import dask_jobqueue

    try:
        return getattr(dask_jobqueue, JOBQUEUE[kind])(**options)
    except (TypeError, ValueError) as error:
        named = f"dask_jobqueue.{JOBQUEUE[kind]}"
        raise AepipeError(f"{path}: {error} (the options of {named})") from error


def kubernetes_spec(path: Path, options: dict, jobs: int) -> dict:
    from dask_kubernetes.operator import make_cluster_spec

    try:
        return make_cluster_spec(**{"n_workers": jobs, **options})
    except TypeError as error:
        raise AepipeError(f"{path}: {error} (the options of make_cluster_spec)") from error


class PlainDumper(yaml.SafeDumper):
    """YAML as kubectl's users write it: a value shared by two containers written out twice."""

    def ignore_aliases(self, data) -> bool:
        return True


def render(path: Path) -> str:
    """What the file would submit, without submitting it: a worker's job script, or the
    DaskCluster manifest."""
    kind, jobs, options = read_cluster_file(path)
    if kind == "kubernetes":
        return yaml.dump(kubernetes_spec(path, options, jobs), Dumper=PlainDumper, sort_keys=False)
    cluster = jobqueue_cluster(path, kind, options)
    try:
        return f"# {jobs} job(s) of:\n{cluster.job_script()}"
    finally:
        cluster.close()
