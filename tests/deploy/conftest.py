"""Fixtures of `make deploy-check`: the pinned kustomize (installed when missing) and every
kustomization built once per session, plus each component built on the base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import build_all, kustomize

Objects = list[dict[str, Any]]


@pytest.fixture(scope="session")
def kustomize_bin() -> Path:
    binary = kustomize(install=True)
    if binary is None:
        pytest.skip(
            "kustomize is not installed and Go is not on PATH (make deploy-check builds it)"
        )
    return binary


@pytest.fixture(scope="session")
def builds(kustomize_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Objects]:
    """Every rendering: the base, each overlay, each component on the base."""
    return build_all(kustomize_bin, tmp_path_factory.mktemp("kustomize"))
