"""The pinned binaries of `make k8s-tools` (deploy/k8s/tools/build.sh) and `wait_until`, the
deadline-bounded wait every step of this suite uses instead of sleeps."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from runtime.settings import default_cache_dir

__all__ = ["BINARIES", "Tools", "wait_until"]

T = TypeVar("T")

OVERRIDES = Path(__file__).parent / "stages"  # our replacements for some of kwok's Stages

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "kustomize",
)


@dataclass(frozen=True)
class Tools:
    """Where build.sh put the binaries (`bin/`) and kwok's Stage files (`kwok-stages/`)."""

    root: Path

    @classmethod
    def locate(cls) -> Tools:
        """`$K8S_TOOLS_DIR`, else `<user cache>/wecom-stream/k8s-tools`, as build.sh does;
        FileNotFoundError naming what is missing and how to build it."""
        given = os.environ.get("K8S_TOOLS_DIR")
        tools = cls(Path(given) if given else default_cache_dir() / "k8s-tools")
        missing = [name for name in BINARIES if not tools.binary(name).exists()]
        if missing or not tools.stages():
            raise FileNotFoundError(
                f"{tools.root}: missing {', '.join(missing) or 'kwok-stages'}; "
                "run `make k8s-tools` (one-time build, ~10 min cold)"
            )
        return tools

    def binary(self, name: str) -> Path:
        return self.root / "bin" / name

    def stages(self) -> list[Path]:
        """kwok's Stage files as build.sh copied them, except those that `OVERRIDES` holds a
        Stage of the same name for (that file instead)."""
        ours = {_stage_name(path): path for path in sorted(OVERRIDES.glob("*.yaml"))}
        upstream = sorted((self.root / "kwok-stages").glob("*.yaml"))
        if not upstream:
            return []
        kept = [path for path in upstream if _stage_name(path) not in ours]
        return [*kept, *ours.values()]


def _stage_name(path: Path) -> str:
    name: str = yaml.safe_load(path.read_text())["metadata"]["name"]
    return name


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None (or False) and return that;
    TimeoutError saying `what` was awaited (and `detail()`) once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            extra = f": {detail()}" if detail else ""
            raise TimeoutError(f"no {what} within {timeout_s:g} s{extra}")
        time.sleep(interval_s)
