"""The import graph of vgem and its benchmarks, built from the source: no circles, and
every import points down the layers that docs/architecture.md describes.

Every ``import`` statement counts, wherever it stands: at the top, inside a
function (vgem imports heavy modules lazily), or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

#: The layers, lowest first; a module belongs to the first layer one of whose
#: prefixes it starts with. The same table is in docs/architecture.md.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("vgem.errors", "vgem.plain", "vgem.version", "vgem.quiet")),
    ("ground floor", ("vgem.staging", "vgem.video", "vgem.checkpoints", "vgem.plugins")),
    (
        "grounding core",
        (
            "vgem.backbones",
            "vgem.extractors",
            "vgem.prompts",
            "vgem.settings",
            "vgem.precision",
            "vgem.gem",
            "vgem.weighting",
            "vgem.heatmaps",
            "vgem.aggregators",
            "vgem.temporal",
            "vgem.grounder",
            "vgem.results",
            "vgem.render",
            "vgem.annotate",
            "vgem.regions",
            "vgem.fetch",
            "vgem.testing",
        ),
    ),
    ("execution and outputs", ("vgem.execution", "vgem.outputs", "vgem.exports", "vgem.viewer")),
    ("evaluation and batches", ("vgem.eval", "vgem.batch")),
    ("command line and front door", ("vgem.cli", "vgem")),
]
#: Imports allowed to point up a layer (the issue allows at most one; there are none).
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def _modules(folder: Path, package: str | None) -> dict[str, Path]:
    """Module name -> file, for a package (``vgem``) or a folder of scripts."""
    found = {}
    for path in folder.rglob("*.py"):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(([package] if package else []) + parts)] = path
    return found


def _imported_names(path: Path, module: str) -> Iterator[str]:
    """Every name an import statement of the file brings in, absolute, candidates first
    (``from vgem import plugins`` yields ``vgem.plugins`` then ``vgem``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parents, *([node.module] if node.module else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}|{base}"


def build_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Importer -> the modules of ``modules`` it imports."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(path, module):
            candidate, _, fallback = name.partition("|")
            target = candidate if candidate in modules else resolve(fallback or candidate)
            if target and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    for number, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return number
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and the docs")


VGEM = build_graph(_modules(REPOSITORY / "vgem", "vgem"))
BENCHMARKS = build_graph(_modules(REPOSITORY / "benchmarks", None))


@pytest.mark.parametrize("graph", [VGEM, BENCHMARKS], ids=["vgem", "benchmarks"])
def test_there_is_no_import_circle(graph):
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_graph_holds_function_level_and_type_checking_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.typed import Thing\n"
        "def f():\n    from pkg import high\n    return high\n"
    )
    (package / "high.py").write_text("from . import low\n")
    (package / "typed.py").write_text("")
    graph = build_graph(_modules(package, "pkg"))
    assert graph["pkg.low"] == {"pkg.high", "pkg.typed"}
    assert circles(graph) == [["pkg.high", "pkg.low"]]


def test_every_import_points_down_the_layers():
    upward = {
        (importer, imported)
        for importer, targets in VGEM.items()
        for imported in targets
        if layer_of(imported) > layer_of(importer)
    }
    assert upward == ALLOWED_UPWARD
    assert len(ALLOWED_UPWARD) <= 1


def _reaches(graph: dict[str, set[str]], start: str, prefix: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for target in graph.get(node, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return {node for node in seen if node == prefix or node.startswith(prefix + ".")}


def test_the_two_clients_of_the_execution_layer_never_import_each_other():
    for module in VGEM:
        if module == "vgem.batch":
            assert _reaches(VGEM, module, "vgem.eval") == set()
        if module.startswith("vgem.eval"):
            assert "vgem.batch" not in _reaches(VGEM, module, "vgem.batch")


def test_the_execution_layer_knows_nothing_of_its_clients():
    for module in VGEM:
        if module.startswith("vgem.execution"):
            assert _reaches(VGEM, module, "vgem.eval") == set()
            assert _reaches(VGEM, module, "vgem.batch") == set()


def test_the_result_data_imports_no_writer():
    assert not VGEM["vgem.results"] & {"vgem.staging", "vgem.outputs", "vgem.annotate"}
    for writer in ("vgem.outputs", "vgem.annotate", "vgem.video.encode"):
        assert _reaches(VGEM, "vgem.results", writer) == set()
