import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(optionalhook=True)  # xdist's hook: pytest without xdist (-p no:xdist) ignores it
def pytest_xdist_auto_num_workers(config) -> int:
    """`--numprocesses auto`: one test process more than cores. Much of a test's time is spent
    waiting (on `dvc` and git subprocesses starting, on the shared run another process is building),
    and a spare process fills it."""
    return (os.cpu_count() or 1) + 1


if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Test processes run side by side: the cores are shared out between them (torch, and the stages
    # they start, read this), as more threads than cores spin in OpenMP's barriers and slow
    # everything.
    os.environ.setdefault(
        "OMP_NUM_THREADS",
        str(max(1, os.cpu_count() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))),
    )

# Modules that take longest go first (addopts keeps xdist from reordering them), so no worker is
# left with one long module at the end: by their durations in a whole run (2026-12-08: test_grid
# about 10 minutes of a 13-minute run, test_faults 6). The first builds the shared small run
# (`built_project`); the second needs none, so one process works on while the others may wait for
# it; test_sharing and test_team share Alice's team (`shared_team`), built by whichever asks first.
SLOWEST_MODULES = [
    "test_pipeline.py",
    "test_folder.py",
    "test_grid.py",
    "test_faults.py",
    "test_sharing.py",
    "test_team.py",
    "test_run_cache_guard.py",
    "test_inspection.py",
    "test_tiled_scans.py",
    "test_distributed.py",
    "test_reliability.py",
]


# A test that asks for one of these runs DVC or pipeline stages: marked `pipeline`, left out of
# `make test-fast`.
PIPELINE_FIXTURES = {"built_project", "project", "own_project", "shared_team"}


def pytest_collection_modifyitems(items):
    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pipeline)

    def rank(item) -> int:
        name = item.path.name
        return SLOWEST_MODULES.index(name) if name in SLOWEST_MODULES else len(SLOWEST_MODULES)

    items.sort(key=rank)  # stable: the tests of a module keep their order


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The four original MNIST .gz files: ../shared/mnist beside the checkout, or
    $AEPIPE_TEST_MNIST_DIR."""
    path = Path(os.environ.get("AEPIPE_TEST_MNIST_DIR", REPO.parent / "shared" / "mnist")).resolve()
    missing = [
        name
        for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
        if not (path / name).is_file()
    ]
    assert not missing, f"the tests need the MNIST .gz files in {path} (set AEPIPE_TEST_MNIST_DIR)"
    return path


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The four original Fashion-MNIST .gz files: ../shared/fashion-mnist, or
    $AEPIPE_TEST_FASHION_MNIST_DIR."""
    path = Path(
        os.environ.get("AEPIPE_TEST_FASHION_MNIST_DIR", REPO.parent / "shared" / "fashion-mnist")
    ).resolve()
    assert (path / "train-images-idx3-ubyte.gz").is_file(), (
        f"the tests need the Fashion-MNIST .gz files in {path} (set AEPIPE_TEST_FASHION_MNIST_DIR)"
    )
    return path


@pytest.fixture(scope="session")
def raw_dir(mnist_dir, tmp_path_factory) -> Path:
    """The decompressed, verified IDX files, downloaded once from the local MNIST copy."""
    from aepipe.data.mnist import download_dataset

    raw = tmp_path_factory.mktemp("mnist") / "raw"
    download_dataset(raw, [str(mnist_dir)], timeout_s=5)
    return raw


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def serve():
    """serve(directory) -> base URL of a real HTTP server on 127.0.0.1 serving that directory."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def built_project(tmp_path_factory, mnist_dir, worker_id) -> Path:
    """A git copy of the project after `dvc exp run` of the whole pipeline with small params, made
    once per test session whichever test process (xdist worker) asks first. Read it, never change
    it: tests take copies (`project`, `own_project`)."""
    from filelock import FileLock

    from dvc_project import ALL_STAGES, SMALL, copy_project, ran_stages, run

    # The parent of a worker's base temporary directory is shared by all the session's workers.
    shared = (
        tmp_path_factory.getbasetemp()
        if worker_id == "master"
        else tmp_path_factory.getbasetemp().parent
    )
    built = shared / "project-built"
    with FileLock(shared / "project.lock"):
        if not built.exists():
            staging = copy_project(Path(tempfile.mkdtemp(dir=shared, prefix="project-")))
            result = run(["dvc", "exp", "run", *SMALL], staging, str(mnist_dir))
            assert sorted(ran_stages(result.stdout)) == sorted(ALL_STAGES)
            staging.rename(built)
    return built


@pytest.fixture(scope="session")
def shared_team(built_project, tmp_path_factory, mnist_dir, worker_id):
    """Alice's shared work (tests/team.py), made once per test session whichever test process asks
    first, so that the sharing tests of several modules run side by side. Only read Alice's
    repository; colleagues clone from its origin."""
    from filelock import FileLock

    from team import Team, share

    shared = (
        tmp_path_factory.getbasetemp()
        if worker_id == "master"
        else tmp_path_factory.getbasetemp().parent
    )
    root = shared / "team-local"
    with FileLock(shared / "team.lock"):
        if not (root / "shared").exists():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed half-way
            root.mkdir()
            share(root, built_project, mnist_dir)
            (root / "shared").touch()
    return Team(root, root / "alice", root / "origin.git", {})


@pytest.fixture(scope="session")
def project(built_project, tmp_path_factory) -> Path:
    """The small run, one copy per test process, shared by its tests: a test that changes it puts it
    back."""
    project = tmp_path_factory.mktemp("project") / "aepipe"
    shutil.copytree(built_project, project, symlinks=True)
    return project


@pytest.fixture
def own_project(built_project, tmp_path) -> Path:
    """The small run, copied for one test alone: for tests that run experiments in it."""
    return Path(shutil.copytree(built_project, tmp_path / "aepipe", symlinks=True))
