"""The layout keeps its promises: no import cycles (deferred and type-only imports included), no
module reaching into another module's private names, and no choosing by class-name strings.

The import graph is read from the source with :mod:`ast`, so an import inside a function or
under ``TYPE_CHECKING`` counts as much as one at the top: a cycle hidden behind a deferred
import is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "tokenguard"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tokenguard"):
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node)
            if not target.startswith("tokenguard"):
                continue
            names: list[str] = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from . import module`: an edge to that module
                    found.append((sub, [], node.lineno))
                else:
                    names.append(alias.name)
            if names:
                found.append((target, names, node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _names, _line in _imports(name):
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
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
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exporting its own submodules is not a design cycle: importing
    # `tokenguard.guard.limits` runs `tokenguard/guard/__init__.py` first, but the submodule
    # does not depend on what the package re-exports. Edges *into* a package (a module
    # importing `from ..guard import Guard`) stay: they do depend on the re-export.
    pruned: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if _is_package(name):
            pruned[name] = {t for t in targets if not t.startswith(name + ".")}
        else:
            pruned[name] = set(targets)
    return pruned


def test_the_reader_finds_every_module_and_edge() -> None:
    # Guards the checks below against passing because the reader saw nothing.
    graph = _graph()
    assert "tokenguard.app" in graph and "tokenguard.guard.decide" in graph
    assert "tokenguard.errors" in graph["tokenguard.guard.decide"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(_without_package_inits(_graph())) == []


def _owner(module: str) -> str:
    # Private modules of one package (client/_auth.py, client/_client.py, ...) may share private
    # names: they are one unit behind the package's __all__.
    parts = module.split(".")
    if parts[-1].startswith("_"):
        return ".".join(parts[:-1])
    return module


def test_no_module_imports_another_modules_private_names() -> None:
    leaks = []
    for name in MODULES:
        for target, names, line in _imports(name):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and _owner(target) != _owner(name) and target != name:
                leaks.append(f"{name}:{line} imports {', '.join(private)} from {target}")
    assert leaks == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_choosing_by_class_name(name: str) -> None:
    source = MODULES[name].read_text()
    tree = ast.parse(source)
    sniffing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "__module__":
            sniffing.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr in ("__name__", "__qualname__")
        ):
            sniffing.append(node.lineno)
    assert sniffing == []
