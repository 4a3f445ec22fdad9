"""Generates the contract files from the models: `schemas/json/topics/<topic>.schema.json`
(each topic's value), `schemas/json/asyncapi.json` (AsyncAPI 3.0) and `docs/topics.md` (the
document as a page). `python -m schemas.export` rewrites them; `--check` exits 1 when the
committed files drifted (a unit test runs it).

`--release` (`make schemas-release`) captures the current topic schemas as the released
baseline, `schemas/json/released/`: what consumers have been promised. The registry test
(tests/integration/test_schema_registry.py) registers the baseline in a real schema
registry and checks the current schemas against it under each subject's compatibility mode,
so an incompatible change to a model fails `make test` until it is made compatible (or
becomes a new topic version, `.v3`). Capture again after a release.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson

from schemas._asyncapi_page import render_page
from schemas.asyncapi import document
from schemas.contracts import CONTRACTS

__all__ = [
    "JSON_DIR",
    "RELEASED_DIR",
    "TOPICS_DIR",
    "dumps",
    "main",
    "released",
    "render",
    "schema_file",
]

JSON_DIR = Path(__file__).parent / "json"
TOPICS_DIR = JSON_DIR / "topics"
RELEASED_DIR = JSON_DIR / "released"
_DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "topics.md"


def dumps(doc: Any) -> str:
    """JSON as the committed files hold it: indented, keys sorted, a final newline."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def schema_file(topic: str) -> str:
    """The file name of a topic's value schema (in `topics/` and `released/`)."""
    return f"{topic}.schema.json"


def render() -> dict[Path, str]:
    """Path -> content of every generated file (the docs page only in a checkout)."""
    files = {TOPICS_DIR / schema_file(c.topic): dumps(c.schema()) for c in CONTRACTS}
    doc = document()
    files[JSON_DIR / "asyncapi.json"] = dumps(doc)
    if _DOCS_PAGE.parent.is_dir():
        files[_DOCS_PAGE] = render_page(doc)
    return files


def released() -> dict[str, dict[str, Any]]:
    """Topic -> its released value schema (the baseline in `schemas/json/released/`)."""
    return {
        path.name.removesuffix(".schema.json"): orjson.loads(path.read_bytes())
        for path in sorted(RELEASED_DIR.glob("*.schema.json"))
    }


def _stale(files: dict[Path, str]) -> list[str]:
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
    generated = {*JSON_DIR.glob("*.json"), *TOPICS_DIR.glob("*.json")}
    return sorted(str(p) for p in [*stale, *(generated - set(files))])


def _release() -> list[str]:
    """Copy the current topic schemas to `released/` (removing topics no longer there)."""
    shutil.rmtree(RELEASED_DIR, ignore_errors=True)
    RELEASED_DIR.mkdir(parents=True)
    for contract in CONTRACTS:
        name = schema_file(contract.topic)
        (RELEASED_DIR / name).write_text(dumps(contract.schema()))
    return [c.topic for c in CONTRACTS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the files drifted")
    mode.add_argument(
        "--release",
        action="store_true",
        help="capture the current topic schemas as the released baseline (schemas/json/released)",
    )
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        drifted = _stale(files)
        if drifted:
            print(f"generated contract files drifted: {drifted}; run `make schemas`")
            return 1
        return 0
    if args.release:
        topics = _release()
        print(f"released baseline: {len(topics)} topic schemas in {RELEASED_DIR}")
        return 0
    for name in _stale(files):
        Path(name).unlink(missing_ok=True)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
