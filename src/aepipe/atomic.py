"""Write files so that a crash leaves either the old file or the new one, never half of one; name a
file by its content."""

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private files (0600/0700); finished outputs get the usual permissions.
FILE_MODE = 0o666 & ~_current_umask()
DIR_MODE = 0o777 & ~_current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix because writers such as `savefig` and `np.savez`
    pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def growing_file(path: Path | None, held: bool = False) -> Iterator[TextIO]:
    """A text file written as it grows, rows as they are made: into PATH.partial, renamed onto PATH
    when the block ends, so that an interrupted run leaves PATH as it was and PATH.partial with what
    was done. `held`: all or nothing instead, kept in memory and written whole at the end. No
    path: standard output."""
    if held:
        text = io.StringIO()
        yield text
        if path is None:
            sys.stdout.write(text.getvalue())
        else:
            with atomic_path(path) as tmp:
                tmp.write_text(text.getvalue())
    elif path is None:
        yield sys.stdout
    else:
        partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", newline="") as file:
            yield file
        os.replace(partial, path)


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def file_sha256(path: str | os.PathLike) -> str:
    """Identifies a saved model, so results computed from it can be matched to it later."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_file(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Copy a file's bytes, all or nothing."""
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)


def replace_dir(dest: str | Path, files: dict[str, bytes]) -> None:
    """Make directory `dest` hold exactly `files` (name → content): all of them or, on failure, what
    it held before."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        staging.chmod(DIR_MODE)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
