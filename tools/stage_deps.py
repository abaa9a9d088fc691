"""dvc.yaml's library deps, written from the import graph: each stage lists exactly the src/aepipe
modules its script imports, directly or through other modules (one too few leaves a stale cache
after an edit, one too many reruns the stage for nothing).

    python tools/stage_deps.py          # rewrite them in dvc.yaml (`make deps`)
    python tools/stage_deps.py --check  # exit 1 naming each stage whose deps differ (tests run it)

Every other line of dvc.yaml is kept as it is; a stage's modules follow its script, sorted. The
packages' __init__.py files are not deps: they hold only their docstrings (a test keeps it so).
"""

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The generated lines: library modules.
LIBRARY_DEP = re.compile(r"^      - src/aepipe/(\w+/)*\w+\.py$")
SCRIPT_DEP = re.compile(r"^      - (stages/\w+\.py)$")
STAGE = re.compile(r"^  (\w+):$")


def imported_library_modules(path: Path, library: Path) -> set[str]:
    """The aepipe modules `path` imports itself, at any place in the file, as paths in `library`
    without their .py (`anomaly/scores`); `from aepipe.anomaly import scores` names a module too."""
    dotted = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aepipe."):
            dotted.add(node.module)
            dotted.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            dotted.update(alias.name for alias in node.names if alias.name.startswith("aepipe."))
    paths = {name.removeprefix("aepipe.").replace(".", "/") for name in dotted}
    return {module for module in paths if (library / f"{module}.py").is_file()}


def generated_deps(script: Path, root: Path) -> list[str]:
    """The library modules `script` imports, and those they import, as dep paths."""
    library = root / "src" / "aepipe"
    found, pending = set(), imported_library_modules(script, library)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending |= imported_library_modules(library / f"{name}.py", library)
    return [f"src/aepipe/{name}.py" for name in sorted(found)]


def rendered(text: str, root: Path) -> str:
    """dvc.yaml's text with every stage's library deps those its scripts import."""
    lines, scripts = [], []
    for line in text.splitlines():
        if STAGE.match(line):
            scripts = []
        if LIBRARY_DEP.match(line):
            continue
        lines.append(line)
        if match := SCRIPT_DEP.match(line):
            scripts.append(root / match.group(1))
            deps = sorted(
                set().union(*(generated_deps(script, root) for script in scripts)),
                key=lambda dep: (dep.startswith("src/"), dep),
            )
            # A later script of the same stage replaces the lines the earlier one wrote.
            while len(lines) > 1 and LIBRARY_DEP.match(lines[-2]):
                lines.pop(-2)
            lines[-1:] = [line, *(f"      - {dep}" for dep in deps)]
    return "\n".join(lines) + "\n"


def stages_that_differ(old: str, new: str) -> list[str]:
    def deps_by_stage(text: str) -> dict[str, list[str]]:
        found, stage = {}, None
        for line in text.splitlines():
            if match := STAGE.match(line):
                stage = match.group(1)
            elif LIBRARY_DEP.match(line):
                found.setdefault(stage, []).append(line.strip())
        return found

    before, after = deps_by_stage(old), deps_by_stage(new)
    return sorted(
        name
        for name in set(before) | set(after)
        if sorted(before.get(name, [])) != sorted(after.get(name, []))
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if dvc.yaml's library deps are not the imports'",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the project (default: this checkout)"
    )
    args = parser.parse_args()
    path = args.root / "dvc.yaml"
    text = path.read_text()
    new = rendered(text, args.root)
    if args.check:
        if new != text:
            sys.exit(
                "dvc.yaml: the library deps of "
                f"{', '.join(stages_that_differ(text, new)) or 'its stages (order)'} are not what "
                "their scripts import; run `make deps`"
            )
        return
    if new != text:
        tmp = path.with_name(".dvc.yaml.tmp")
        tmp.write_text(new)
        tmp.replace(path)


if __name__ == "__main__":
    main()
