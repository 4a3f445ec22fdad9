"""How the Kubernetes base (deploy/k8s/base) runs each workload of the image, as `podman run`
flags: the pod's user, group and fsGroup, the container's read-only root, dropped
capabilities and no privilege escalation, its memory limit, its claims as host directories
owned by the fsGroup (what the kubelet does with `fsGroup`), its emptyDirs as tmpfs of their
size limit, its args and its environment (the ConfigMap, then the container's `env`), and its
termination grace. A field this does not know fails the tests: the run follows the manifests
or says why not."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

__all__ = ["BASE", "Workload", "base_workloads"]

BASE = REPO / "deploy" / "k8s" / "base"
Obj = dict[str, Any]

_POD_FIELDS = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "fsGroupChangePolicy"}
_POD_FIELDS |= {"seccompProfile"}  # RuntimeDefault: podman applies its default profile too
_CONTAINER_FIELDS = {"allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities"}
_BINARY = {"Ki": "k", "Mi": "m", "Gi": "g"}


@dataclass(frozen=True)
class Workload:
    """One StatefulSet of the base, reduced to what `podman run` can reproduce."""

    name: str
    args: list[str]
    env: dict[str, str]
    user: int
    group: int
    fs_group: int
    flags: list[str]
    """--user, --read-only, --cap-drop, --security-opt, --memory, --tmpfs."""
    claims: dict[str, str]
    """{claim name: mount path}: each a PersistentVolumeClaim of the StatefulSet."""
    grace_s: int

    def run_flags(self, volumes: dict[str, Path]) -> list[str]:
        """The flags with each claim mounted from `volumes[claim]`, made writable by the
        fsGroup as the kubelet makes a claim (group-owned, setgid, group-writable)."""
        mounts = []
        for claim, path in self.claims.items():
            host = volumes[claim]
            host.mkdir(parents=True, exist_ok=True)
            os.chown(host, -1, self.fs_group)
            host.chmod(0o2770)
            mounts.append(f"--volume={host}:{path}")
        return [*self.flags, *mounts]


def _documents(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _objects() -> list[Obj]:
    listed = _documents(BASE / "kustomization.yaml")[0]["resources"]
    return [obj for name in listed for obj in _documents(BASE / name)]


def _memory(quantity: str) -> str:
    number, unit = quantity[:-2], quantity[-2:]
    assert unit in _BINARY, f"memory limit {quantity!r}: unknown unit"
    assert number.isdigit(), f"memory limit {quantity!r}: not a whole number"
    return number + _BINARY[unit]


def _workload(sts: Obj, config: dict[str, str]) -> Workload:
    name = sts["metadata"]["name"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = pod["securityContext"]
    assert set(security) <= _POD_FIELDS, f"{name}: pod securityContext {sorted(security)}"
    assert security["runAsNonRoot"] is True, name
    hardening = container["securityContext"]
    assert set(hardening) <= _CONTAINER_FIELDS, f"{name}: securityContext {sorted(hardening)}"
    user, group = security["runAsUser"], security["runAsGroup"]
    flags = [f"--user={user}:{group}", f"--group-add={security['fsGroup']}"]
    if hardening.get("readOnlyRootFilesystem"):
        # Only the volumes are writable: no tmpfs of podman's own on /tmp, /var/tmp, /run.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    flags += [f"--cap-drop={cap}" for cap in hardening.get("capabilities", {}).get("drop", [])]
    if hardening.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    if "memory" in container["resources"].get("limits", {}):
        flags.append(f"--memory={_memory(container['resources']['limits']['memory'])}")

    claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", ())}
    volumes = {v["name"]: v for v in pod.get("volumes", ())}
    mounted: dict[str, str] = {}
    for mount in container.get("volumeMounts", ()):
        assert set(mount) == {"name", "mountPath"}, f"{name}: volumeMount {mount}"
        if mount["name"] in claims:
            mounted[mount["name"]] = mount["mountPath"]
            continue
        volume = volumes[mount["name"]]
        assert set(volume) == {"name", "emptyDir"}, f"{name}: volume {volume}"
        size = volume["emptyDir"].get("sizeLimit")
        options = f":size={_memory(size)}" if size else ""
        flags.append(f"--tmpfs={mount['mountPath']}{options}")

    env = dict(config)
    for item in container.get("env", ()):
        assert "value" in item, f"{name}: env {item['name']} is not a plain value"
        env[item["name"]] = item["value"]
    return Workload(
        name=name,
        args=list(container["args"]),
        env=env,
        user=user,
        group=group,
        fs_group=security["fsGroup"],
        flags=flags,
        claims=mounted,
        grace_s=pod["terminationGracePeriodSeconds"],
    )


def base_workloads() -> dict[str, Workload]:
    """Every StatefulSet of the base by name (`wecom-stream-ingress`, ...)."""
    objects = _objects()
    (config,) = [o["data"] for o in objects if o["kind"] == "ConfigMap"]
    return {
        obj["metadata"]["name"]: _workload(obj, config)
        for obj in objects
        if obj["kind"] == "StatefulSet"
    }
