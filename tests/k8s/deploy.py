"""A rendering applied as an operator would: its namespace, then what the manifests expect
beside them (Secrets, static PersistentVolumes), a server-side dry run, the real server-side
apply, and every workload's rollout. Each rendering is applied once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.cluster import LocalKube
from tests.k8s.manifests import (
    Rendering,
    persistent_volumes,
    render,
    required_secrets,
    workloads,
)

__all__ = ["Applied", "Deployer"]

ROLLOUT_TIMEOUT_S = 90


@dataclass(frozen=True)
class Applied:
    rendering: Rendering
    objects: list[dict[str, Any]]
    dry_run: str  # kubectl's output of the server-side dry run
    applied: str  # and of the real apply

    @property
    def namespace(self) -> str:
        return self.rendering.namespace


class Deployer:
    """Applies renderings to `kube`, each once; `host_dir` holds the volumes' (unused) paths."""

    def __init__(self, kube: LocalKube, kustomize: Path, host_dir: Path) -> None:
        self.kube = kube
        self.kustomize = kustomize
        self.host_dir = host_dir
        self._applied: dict[str, Applied] = {}

    def apply(self, rendering: Rendering) -> Applied:
        """Dry run, then apply for real; AssertionError with the server's message if either
        is refused."""
        if rendering.name in self._applied:
            return self._applied[rendering.name]
        objects = render(self.kustomize, rendering)
        ns = rendering.namespace
        self.kube.kubectl("create", "namespace", ns)
        provided = required_secrets(objects)
        if provided:
            self.kube.apply_objects(provided, "-n", ns)
        self.kube.apply_objects(persistent_volumes(objects, ns, self.host_dir))
        dry_run = self.kube.apply_objects(objects, "--dry-run=server", "-n", ns)
        applied = self.kube.apply_objects(objects, "-n", ns)
        done = Applied(rendering, objects, dry_run, applied)
        self._applied[rendering.name] = done
        return done

    def rollout(self, applied: Applied, timeout_s: float = ROLLOUT_TIMEOUT_S) -> list[str]:
        """`kubectl rollout status` of every workload (they roll out concurrently, so one
        deadline each is enough); returns kubectl's final line per workload."""
        lines = []
        for workload in workloads(applied.objects):
            ref = f"{workload['kind'].lower()}/{workload['metadata']['name']}"
            done = self.kube.kubectl(
                "rollout",
                "status",
                ref,
                "-n",
                applied.namespace,
                f"--timeout={timeout_s:g}s",
                timeout_s=timeout_s + 30,
                check=False,
            )
            if done.returncode != 0:
                pods = self.kube.kubectl("get", "pods,pvc", "-n", applied.namespace, "-o", "wide")
                raise AssertionError(
                    f"{applied.namespace} {ref} did not roll out: {done.stderr}{done.stdout}\n"
                    f"{pods.stdout}"
                )
            lines.append(done.stdout.strip().splitlines()[-1])
        return lines
