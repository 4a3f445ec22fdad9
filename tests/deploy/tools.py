"""The pinned tools of `make deploy-check` and kustomize builds as parsed objects.

kustomize v5.8.2 and promtool v0.316.0 are built once with `go install` into the user cache
(`tests.support.gotools`; ~40 s and 3-8 min cold); the npm
packages of deploy/k8s/validate are installed once with `npm ci` (re-run when its lock file
changes). Without Go or Node the checks that need them skip, saying so.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.gotools import go_tool
from tests.support.npm import node_script

__all__ = [
    "K8S",
    "KUSTOMIZE_VERSION",
    "PROMTOOL_VERSION",
    "VALIDATE_DIR",
    "build",
    "build_all",
    "kustomizations",
    "kustomize",
    "node_validator",
    "promtool",
]

KUSTOMIZE_VERSION = "v5.8.2"  # v5.8.3 needs Go 1.27
PROMTOOL_VERSION = "v0.316.0"  # github.com/prometheus/prometheus, as docs/operations.md says
K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VALIDATE_DIR = K8S / "validate"


def kustomize(*, install: bool) -> Path | None:
    """The pinned kustomize: `$WECOM_STREAM_KUSTOMIZE`, else the cached build; built with Go
    first when `install` and Go is on PATH. None when absent and not installable."""
    package = "sigs.k8s.io/kustomize/kustomize/v5"
    return go_tool(
        "kustomize", package, KUSTOMIZE_VERSION, "WECOM_STREAM_KUSTOMIZE", install=install
    )


def promtool(*, install: bool) -> Path | None:
    """The pinned promtool (`make promtool`): `$WECOM_STREAM_PROMTOOL`, else the cached build;
    built with Go first (3-8 min) when `install` and Go is on PATH. None otherwise."""
    package = "github.com/prometheus/prometheus/cmd/promtool"
    return go_tool("promtool", package, PROMTOOL_VERSION, "WECOM_STREAM_PROMTOOL", install=install)


def node_validator(*, install: bool) -> list[str] | None:
    """The command that validates KEDA objects (deploy/k8s/validate/validate.mjs), after
    `npm ci` when its lock file changed; None without Node and npm."""
    return node_script(VALIDATE_DIR, "validate.mjs", install=install)


def kustomizations(k8s: Path = K8S) -> list[Path]:
    """Every buildable kustomization of `k8s` (deploy/k8s or a rendered copy): the base and
    each overlay (components are built on the base by tests/deploy)."""
    return [
        k8s / "base",
        *sorted(p.parent for p in (k8s / "overlays").glob("*/kustomization.yaml")),
    ]


def build(binary: Path, directory: Path) -> list[dict[str, Any]]:
    """`kustomize build directory`, parsed."""
    out = subprocess.run(
        [str(binary), "build", str(directory)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"kustomize build {directory} failed:\n{out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def build_all(binary: Path, scratch: Path, k8s: Path = K8S) -> dict[str, list[dict[str, Any]]]:
    """{path relative to `k8s`: objects} for the base, each overlay and, for each component,
    the base with it (`base+components/<name>`, built in `scratch`)."""
    out = {str(d.relative_to(k8s)): build(binary, d) for d in kustomizations(k8s)}
    for component in sorted((k8s / "components").glob("*/kustomization.yaml")):
        root = scratch / f"with-{component.parent.name}"
        root.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath  # kustomize refuses absolute paths
        (root / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources: [{rel(k8s / 'base', root)}]\n"
            f"components: [{rel(component.parent, root)}]\n"
        )
        out[f"base+{component.parent.relative_to(k8s)}"] = build(binary, root)
    return out
