"""The engine's modules import each other without a cycle, checked from the source: every
import of a `processors.engine` module counts, at module level, inside a function or under
`if TYPE_CHECKING:` (a cycle hidden there is still two modules that need each other: the
member and the restoration were one, until `_context.py`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = "processors.engine"


def _module(package: str, relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def engine_imports(package_dir: Path, package: str = ENGINE) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports, for every `.py` file below
    `package_dir` (a package's `__init__` under the package's name)."""
    modules = {
        _module(package, p.relative_to(package_dir)): p for p in sorted(package_dir.rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package upwards
                    parts = here.split(".")
                    anchor = ".".join(parts[: len(parts) - (node.level - 1)])
                    base = f"{anchor}.{base}" if base else anchor
                # `from package import name`: the submodule `name` where there is one
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that ends where it starts) through each strongly connected
    group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, group) for group in groups]


def _path_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    seen = {start: [start]}
    frontier = [start]
    while frontier:  # breadth-first, back to start
        node = frontier.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                return [*seen[node], start]
            if nxt not in seen:
                seen[nxt] = [*seen[node], nxt]
                frontier.append(nxt)
    raise AssertionError(f"no cycle through {sorted(group)}")  # pragma: no cover


def test_the_engine_modules_import_each_other_without_a_cycle() -> None:
    graph = engine_imports(ROOT / "processors" / "engine")
    assert "processors.engine._restoring" in graph["processors.engine._member"]  # sees edges
    assert cycles(graph) == []


def test_the_check_sees_a_cycle_under_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "_a.py").write_text("from pkg._b import B\nfrom pkg import _c\n\nA = 1\n")
    (package / "_b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg._a import A\n"
    )
    (package / "_c.py").write_text("def f():\n    from . import _b\n    from ._a import A\n")
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text("from .._c import f\nfrom pkg.sub import _d\n")
    (package / "sub" / "_d.py").write_text("import pkg._b\n")
    graph = engine_imports(package, "pkg")
    assert graph == {
        "pkg": set(),
        "pkg._a": {"pkg._b", "pkg._c"},
        "pkg._b": {"pkg._a"},
        "pkg._c": {"pkg._a", "pkg._b"},
        "pkg.sub": {"pkg._c", "pkg.sub._d"},
        "pkg.sub._d": {"pkg._b"},
    }
    assert cycles(graph) == [["pkg._a", "pkg._b", "pkg._a"]]
