"""The layout the brief asks for, checked on the source itself: top-level packages import one another
without cycles (each layer only below itself), and only the Prefect flows (the CLI among them) import
`flows`. Read from the import statements with `ast`, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The engine's packages (pyproject's packages.find); tests/ and bench/ are consumers and may import anything.
PACKAGES = (
    "flows",
    "engine",
    "stages",
    "backends",
    "runtime",
    "annotators",
    "schemas",
    "gates",
    "metrics",
    "review",
    "exports",
    "data",
)


def imports_between_packages() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the modules that import it."""
    graph: dict[str, dict[str, set[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES and top != package:
                        graph[package].setdefault(top, set()).add(module)
    return graph


def test_top_level_packages_import_one_another_without_cycles():
    graph = imports_between_packages()
    done: set[str] = set()

    def visit(package: str, path: list[str]) -> None:
        if package in path:
            cycle = path[path.index(package) :] + [package]
            edges = [f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})" for a, b in zip(cycle, cycle[1:])]
            raise AssertionError("import cycle between packages:\n" + "\n".join(edges))
        if package in done:
            return
        for imported in graph[package]:
            visit(imported, path + [package])
        done.add(package)

    for package in PACKAGES:
        visit(package, [])


def test_only_the_flows_import_flows():
    graph = imports_between_packages()
    importers = {p: sorted(graph[p]["flows"]) for p in PACKAGES if "flows" in graph[p]}
    assert importers == {}, f"orchestration imported outside flows/: {importers}"


def test_the_runtime_and_the_schemas_know_no_stage():
    """The bottom layers: the schemas import nothing of the engine; the runtime only the schemas."""
    graph = imports_between_packages()
    assert set(graph["schemas"]) <= {"data"}
    assert set(graph["runtime"]) <= {"schemas"}
