"""Pinned Go tools built once with `go install` into the user cache
(`<cache>/wecom-stream/tools/<name>-<version>/<name>`): kustomize and promtool for
`make deploy-check` (tests/deploy/tools.py), the Toxiproxy server for `make test-faults`
and `make soak` (tests/support/toxiproxy.py). `GOTOOLCHAIN=local`: the Go on PATH builds
them, nothing else is downloaded but the modules themselves (from the Go module proxy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from runtime.settings import default_cache_dir

__all__ = ["go_tool"]


def go_tool(
    name: str,
    package: str,
    version: str,
    env_var: str,
    *,
    install: bool,
    built_as: str | None = None,
) -> Path | None:
    """`$env_var`, else the cached build of `package@version`; built with Go first when
    `install` and Go is on PATH. None when absent and not installable. `built_as`: the name
    `go install` gives the binary when it is not `name` (Toxiproxy's is `server`)."""
    given = os.environ.get(env_var)
    if given:
        return Path(given)
    binary = default_cache_dir() / "tools" / f"{name}-{version}" / name
    if binary.exists():
        return binary
    go = shutil.which("go")
    if not install or go is None:
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as gobin:
        env = os.environ | {"GOBIN": gobin, "GOTOOLCHAIN": "local", "GOFLAGS": ""}
        subprocess.run([go, "install", f"{package}@{version}"], cwd=gobin, env=env, check=True)
        os.replace(Path(gobin) / (built_as or name), binary)  # atomic: all or none is seen
    return binary
