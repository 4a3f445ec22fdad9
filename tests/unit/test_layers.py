"""The layering of the code base, checked from the source: every import (module level or
inside a function) runs downwards, `schemas` ← `runtime` ← `ingress`/`processors` ←
`wecom_stream` (the front door) ← `tests` ← `bench`. Nothing in the product imports the
harness, and `ingress` and `processors` stay independent of each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# what each top-level package may import of ours (itself always)
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "runtime": {"schemas"},
    "ingress": {"schemas", "runtime"},
    "processors": {"schemas", "runtime"},
    "wecom_stream": {"schemas", "runtime", "ingress", "processors"},
    "tests": {"schemas", "runtime", "ingress", "processors", "wecom_stream"},
    "bench": {"schemas", "runtime", "ingress", "processors", "wecom_stream", "tests"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(top-level package of ours, line) for each absolute import in the file."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            if top in ALLOWED:
                found.add((top, node.lineno))
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for top, line in sorted(imported_packages(path)):
            if top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_downwards(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from wecom_stream.cli import main\n    import ingress.app\n")
    assert imported_packages(module) == {("wecom_stream", 2), ("ingress", 3)}
