"""The library's import graph, read from the code's own import statements (those inside functions
too): no module imports itself round a loop, and neither does a subpackage."""

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_imports() -> dict[str, set[str]]:
    """Each aepipe module → the aepipe modules it imports (`from package import module` names the
    module, `from module import name` the module)."""
    modules = {
        ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): path
        for path in SRC.rglob("*.py")
    }
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                }
        graph[name] = {each for each in imported if each in modules and each != name}
    return graph


def subpackage(module: str) -> str:
    """aepipe.deploy.cli → aepipe.deploy; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_the_import_graph_is_read_from_the_code():
    graph = module_imports()
    assert "aepipe.deploy.scorers" in graph["aepipe.deploy.scoring"]
    # an import inside a function counts: the cluster is imported only when one is asked for
    assert "aepipe.deploy.cluster_scoring" in graph["aepipe.deploy.scoring"]
    assert {"aepipe.deploy.cli", "aepipe.grid.cli"} <= graph["aepipe.cli"]


def test_no_module_imports_itself_round_a_loop():
    assert cycle(module_imports()) is None


def test_no_subpackage_imports_itself_round_a_loop():
    packages: dict[str, set[str]] = {}
    for module, imported in module_imports().items():
        packages.setdefault(subpackage(module), set()).update(
            subpackage(each) for each in imported if subpackage(each) != subpackage(module)
        )
    assert cycle(packages) is None


@pytest.mark.parametrize(
    "graph, found",
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, {"a", "b", "c"}), ({"a": {"b"}, "b": set()}, None)],
)
def test_a_loop_is_found_however_long(graph, found):
    loop = cycle(graph)
    assert (set(loop) if loop else None) == found
