"""Every stage lists exactly the library modules it imports (directly or through other modules) in
its dvc.yaml deps: one too few leaves a stale cache after an edit, one too many reruns it for nothing."""

import ast
from pathlib import Path

import pytest
import yaml

from conftest import REPO

LIBRARY = REPO / "src" / "aepipe"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def imported_library_modules(path: Path) -> set[str]:
    """Names of the aepipe modules `path` imports itself, at any place in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aepipe."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("aepipe."))
    return names


def transitive_library_modules(script: Path) -> set[str]:
    found, pending = set(), imported_library_modules(script)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending |= imported_library_modules(LIBRARY / f"{name}.py")
    return found


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_list_exactly_the_library_modules_it_imports(stage):
    deps = STAGES[stage]["deps"]
    scripts = [REPO / dep for dep in deps if dep.startswith("stages/")]
    assert scripts, f"stage {stage}: its script in stages/ is not among its deps"
    imported = set().union(*(transitive_library_modules(script) for script in scripts))
    listed = {Path(dep).stem for dep in deps if dep.startswith("src/aepipe/")}
    assert not imported - listed, f"stage {stage}: dvc.yaml misses src/aepipe/{sorted(imported - listed)} in its deps"
    assert not listed - imported, f"stage {stage}: dvc.yaml lists src/aepipe/{sorted(listed - imported)}, not imported"


def test_dvc_lock_holds_only_stages_that_dvc_yaml_defines():
    # DVC keeps the lock entry of a stage removed from dvc.yaml; a stale one makes `dvc exp push`
    # and the outputs read from the lock name files that no stage writes any more.
    locked = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert set(locked) <= set(STAGES), f"dvc.lock has stages dvc.yaml lacks: {sorted(set(locked) - set(STAGES))}"
