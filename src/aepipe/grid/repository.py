"""The git side of a grid: the user's workspace captured as a commit that workers can clone,
without touching the user's branch, index or files, and the experiments a remote already holds."""

import os
import subprocess
import tempfile
from pathlib import Path

from aepipe.errors import AepipeError

WORKSPACE_REFS = "refs/aepipe/grid"  # where the captured workspaces are pushed
# The captured workspace's commit is named by its contents alone (same tree, same parent, same
# date), so that capturing the same workspace again gives the same commit.
IDENTITY = {"GIT_AUTHOR_NAME": "aepipe grid", "GIT_AUTHOR_EMAIL": "aepipe-grid@localhost"}


def git(cwd: Path, *args: str, env: dict | None = None) -> str:
    """A git command's output; its error, named, when it fails."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env and {**os.environ, **env}
    )
    if done.returncode != 0:
        raise AepipeError(f"git {' '.join(args)} (in {cwd}): {done.stderr.strip()}")
    return done.stdout.strip()


def capture_workspace(repo: Path) -> tuple[str, str, str]:
    """(HEAD, the workspace's tree, a commit of that tree on top of HEAD): tracked and untracked
    files as they are now, ignored ones (DVC's outputs) left out, as `dvc exp run --queue` takes
    them. Written through a temporary index: the user's index and files are not touched."""
    head = git(repo, "rev-parse", "HEAD")
    with tempfile.TemporaryDirectory() as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git(repo, "read-tree", head, env=index)
        git(repo, "add", "-A", env=index)
        tree = git(repo, "write-tree", env=index)
    date = git(repo, "log", "-1", "--format=%cI", head)
    identity = {
        **IDENTITY,
        "GIT_COMMITTER_NAME": IDENTITY["GIT_AUTHOR_NAME"],
        "GIT_COMMITTER_EMAIL": IDENTITY["GIT_AUTHOR_EMAIL"],
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
    }
    message = f"aepipe grid: the workspace on {head}"
    commit = git(repo, "commit-tree", tree, "-p", head, "-m", message, env=identity)
    return head, tree, commit


def remote_url(repo: Path, remote: str) -> str:
    """The git remote's URL as a worker elsewhere reaches it: a local path made absolute."""
    url = git(repo, "remote", "get-url", remote)
    local = (repo / url).resolve()
    return str(local) if "://" not in url and ":" not in url.split("/")[0] else url


def pushed_experiments(url: str, baseline: str) -> set[str]:
    """The names of the experiments on `baseline` that the git remote at `url` holds."""
    prefix = f"refs/exps/{baseline[:2]}/{baseline[2:]}/"
    listed = git(Path.cwd(), "ls-remote", url, prefix + "*")
    return {line.split("\t")[1].removeprefix(prefix) for line in listed.splitlines()}
