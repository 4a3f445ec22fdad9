"""Node tools of the checks (`make deploy-check`, `make test`): a folder with a
`package.json` and `package-lock.json` whose packages `npm ci` installs into its own
`node_modules`, again only when the lock file changed (a stamp holds its hash)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

__all__ = ["ASYNCAPI_PARSER", "node_script"]

_STAMP = ".wecom-stream-lock.sha256"
ASYNCAPI_PARSER = Path(__file__).resolve().parents[1] / "asyncapi"
"""@asyncapi/parser and check.mjs, which parses a document (test_asyncapi_document.py)."""


def node_script(directory: Path, script: str, *, install: bool) -> list[str] | None:
    """The command that runs `directory/script` with node, after `npm ci` in `directory`
    when its lock file changed (and `install`); None without Node and npm, or when the
    packages are not installed and `install` is false."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    stamp = directory / "node_modules" / _STAMP
    lock = hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == lock):
        if not install:
            return None
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            check=True,
        )
        stamp.write_text(lock)
    return [node, str(directory / script)]
