"""A real Dask cluster on 127.0.0.1 for the grid tests: `dask scheduler` and `dask worker`
processes, each worker in a process group of its own, so that a test can kill one as a lost machine
dies (its nanny, its worker and the experiment it runs, at once)."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from distributed import Client

from dvc_project import project_env
from team import free_port

DASK = str(Path(sys.executable).parent / "dask")


class Cluster:
    def __init__(self, address: str, directory: Path, env: dict):
        self.address, self.directory, self.env = address, directory, env
        self.workers: dict[str, subprocess.Popen] = {}

    def start_worker(self, name: str) -> None:
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 (the process's own)
        self.workers[name] = subprocess.Popen(
            [
                DASK,
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(self.directory / name),
            ],
            stdout=log,
            stderr=log,
            env=self.env,
            start_new_session=True,
        )

    def kill_worker(self, name: str) -> None:
        """SIGKILL to the worker's whole process group: no goodbye to the scheduler."""
        os.killpg(self.workers.pop(name).pid, signal.SIGKILL)

    def running_on(self, client: Client, name: str) -> list[str]:
        """The keys of the tasks the named worker is running."""
        workers = client.scheduler_info(n_workers=-1)["workers"]
        address = next((a for a, info in workers.items() if info["name"] == name), None)
        return list(client.processing().get(address, [])) if address else []


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "no dask scheduler"
            time.sleep(0.2)


@contextmanager
def dask_cluster(directory: Path, mirror: str, workers: int = 2):
    """A scheduler and `workers` workers (one task at a time each), stopped on leaving."""
    port = free_port()
    env = project_env(mirror)
    scheduler = subprocess.Popen(
        [
            DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            ":0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "scheduler.log", "ab"),  # noqa: SIM115
        env=env,
        start_new_session=True,
    )
    cluster = Cluster(f"tcp://127.0.0.1:{port}", directory, env)
    try:
        wait_for_port(port, scheduler)
        for number in range(1, workers + 1):
            cluster.start_worker(f"w{number}")
        with Client(cluster.address) as client:
            client.wait_for_workers(workers, timeout=120)
        yield cluster
    finally:
        for process in [*cluster.workers.values(), scheduler]:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
