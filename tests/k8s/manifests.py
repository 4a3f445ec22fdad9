"""What the suite applies: the kustomizations of deploy/k8s found at run time (the base and
each `overlays/*`), rendered with the pinned kustomize, and what an operator provides beside
them: static PersistentVolumes for the StatefulSets' claims (there is no provisioner) and
the Secrets the manifests reference but leave to be created outside git."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "K8S",
    "WORKLOAD_KINDS",
    "Rendering",
    "discover",
    "persistent_volumes",
    "render",
    "required_secrets",
    "workloads",
]

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Rendering:
    """One kustomization, applied into a namespace of its own (`test-<name>`)."""

    name: str  # "base" or the overlay's folder name
    path: Path

    @property
    def namespace(self) -> str:
        return "test-" + re.sub(r"[^a-z0-9-]", "-", self.name.lower())


def discover() -> list[Rendering]:
    """The base and every overlay that has a kustomization.yaml, in name order."""
    overlays = sorted(path.parent for path in K8S.glob("overlays/*/kustomization.yaml"))
    return [Rendering("base", K8S / "base"), *(Rendering(p.name, p) for p in overlays)]


def render(kustomize: Path, rendering: Rendering) -> list[Obj]:
    """`kustomize build` of the rendering, as objects; refuses a rendering that sets its own
    namespace (each is applied into the suite's namespace for it)."""
    done = subprocess.run(
        [str(kustomize), "build", str(rendering.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize build {rendering.path} failed:\n{done.stderr}")
    objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    pinned = {o["metadata"]["namespace"] for o in objects if "namespace" in o["metadata"]}
    if pinned:
        raise AssertionError(f"{rendering.name} sets namespace(s) {sorted(pinned)}: unexpected")
    return objects


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def persistent_volumes(objects: list[Obj], namespace: str, host_dir: Path) -> list[Obj]:
    """One hostPath PersistentVolume pre-bound (claimRef) to each claim the rendering will
    create: its PersistentVolumeClaims and each StatefulSet ordinal's claim templates, with
    the claim's size, access modes, volume mode and class ("" when the claim names none:
    with no default StorageClass such a claim binds only to a class-less volume)."""
    claims: list[tuple[str, Obj]] = []
    for obj in objects:
        if obj["kind"] == "PersistentVolumeClaim":
            claims.append((obj["metadata"]["name"], obj["spec"]))
        elif obj["kind"] == "StatefulSet":
            spec = obj["spec"]
            for ordinal in range(spec.get("replicas", 1)):
                for template in spec.get("volumeClaimTemplates", []):
                    name = f"{template['metadata']['name']}-{obj['metadata']['name']}-{ordinal}"
                    claims.append((name, template["spec"]))
    return [_volume(name, spec, namespace, host_dir) for name, spec in claims]


def _volume(claim: str, spec: Obj, namespace: str, host_dir: Path) -> Obj:
    name = f"{namespace}-{claim}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"test-k8s/namespace": namespace}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec["accessModes"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "storageClassName": spec.get("storageClassName") or "",
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": str(host_dir / name), "type": "DirectoryOrCreate"},
        },
    }


def required_secrets(objects: list[Obj]) -> list[Obj]:
    """The Secrets referenced (pods' env, envFrom and volumes; KEDA's secretTargetRef) but
    not rendered, each with the keys referenced (placeholder values): what the README asks
    an operator to create before applying."""
    rendered = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    keys: dict[str, set[str]] = {}
    for name, key in _secret_refs(objects):
        if name not in rendered:
            keys.setdefault(name, set()).update([key] if key else [])
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "Opaque",
            "stringData": {key: "test-k8s-placeholder" for key in sorted(found)},
        }
        for name, found in sorted(keys.items())
    ]


def _secret_refs(objects: list[Obj]) -> Iterator[tuple[str, str | None]]:
    for obj in objects:
        if obj["kind"] == "TriggerAuthentication":
            for ref in obj["spec"].get("secretTargetRef", []):
                yield ref["name"], ref["key"]
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    yield source["secretRef"]["name"], None
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield ref["name"], ref["key"]
        for volume in pod.get("volumes", []):
            secrets = [volume["secret"]] if "secret" in volume else []
            secrets += [
                {"secretName": s["secret"]["name"], **s["secret"]}
                for s in volume.get("projected", {}).get("sources", [])
                if "secret" in s
            ]
            for secret in secrets:
                yield secret["secretName"], None
                for item in secret.get("items", []):
                    yield secret["secretName"], item["key"]
