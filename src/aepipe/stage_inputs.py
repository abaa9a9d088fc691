"""A stage's inputs read at its start and again at its end: what changed in between.

A pipeline tool records a finished stage under the params and input files it finds when the stage
ends. Another run that rewrites the params file meanwhile (or an edit of an input) would file the
result under values it was not computed with. `snapshot` takes a cheap snapshot (the params
file's values; each input file's size and modification time), `changes` names what differs.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML, YAMLError


@dataclass(frozen=True)
class Inputs:
    params: dict[str, object]  # dotted key -> value, every leaf of the params file
    files: dict[str, tuple[int, int]]  # path -> (size, mtime_ns), every file under the input paths


def snapshot(params_path: str | os.PathLike, input_paths: list[str]) -> Inputs:
    return Inputs(_leaves(_read_yaml(Path(params_path))), _signatures(input_paths))


def changes(before: Inputs, after: Inputs) -> list[str]:
    """One line per changed param (the value used, the value now) and per changed input file."""
    lines = [
        f"{key}: ran with {_show(before.params.get(key, _MISSING))}, now "
        f"{_show(after.params.get(key, _MISSING))}"
        for key in sorted(before.params.keys() | after.params.keys())
        if before.params.get(key, _MISSING) != after.params.get(key, _MISSING)
    ]
    lines += [
        f"{path}: {'removed' if path not in after.files else 'added' if path not in before.files else 'modified'}"  # noqa: E501
        for path in sorted(before.files.keys() | after.files.keys())
        if before.files.get(path) != after.files.get(path)
    ]
    return lines


_MISSING = object()


def _read_yaml(path: Path) -> object:
    try:
        return YAML(typ="safe").load(path.read_text())  # YAML 1.2, as DVC reads and writes it
    except (FileNotFoundError, YAMLError) as error:
        return f"<unreadable: {type(error).__name__}>"


def _leaves(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict) and tree:
        return {
            key: value
            for name, sub in tree.items()
            for key, value in _leaves(sub, f"{prefix}{name}.").items()
        }
    return {prefix.removesuffix(".") or "(the whole file)": tree}


def _signatures(paths: list[str]) -> dict[str, tuple[int, int]]:
    found = {}
    for path in map(Path, paths):
        files = (
            [path]
            if path.is_file()
            else sorted(p for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else []
        )
        for file in files:
            stat = file.stat()
            found[str(file)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _show(value: object) -> str:
    return "(absent)" if value is _MISSING else "null" if value is None else repr(value)
