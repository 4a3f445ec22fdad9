"""The deploy manifests agree with the code: one scaled StatefulSet (state on a volume) per
processor, consumer groups and topics as the engine names them, a scaler trigger per input
topic, never more replicas than partitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from processors.runner import load_processor
from runtime.settings import ProcessorSettings
from schemas.registry import PROCESSOR_NAMES, by_name
from tests.conftest import REPO

K8S = REPO / "deploy" / "k8s" / "base"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = documents(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_each_processor_is_a_stateful_set_with_a_state_volume_and_a_lag_scaler() -> None:
    for name in PROCESSOR_NAMES:
        docs = {doc["kind"]: doc for doc in documents(K8S / f"{name}.yaml")}
        spec = docs["StatefulSet"]["spec"]
        assert spec["serviceName"] == docs["Service"]["metadata"]["name"]
        container = spec["template"]["spec"]["containers"][0]
        assert container["args"] == ["process", name]
        env = {e["name"]: e["value"] for e in container["env"]}
        (mount,) = container["volumeMounts"]
        (claim,) = spec["volumeClaimTemplates"]
        assert mount["name"] == claim["metadata"]["name"]
        assert env["WECOM_STREAM_STATE_DIR"] == mount["mountPath"]
        assert env["WECOM_STREAM_STORE_KIND"] == "disk"
        scaled = docs["ScaledObject"]["spec"]
        target = scaled["scaleTargetRef"]
        assert (target["kind"], target["name"]) == (
            "StatefulSet",
            docs["StatefulSet"]["metadata"]["name"],
        )
        processor = load_processor(name, ProcessorSettings())
        triggers = [t["metadata"] for t in scaled["triggers"]]
        assert sorted(t["topic"] for t in triggers) == sorted(processor.inputs)
        assert {t["consumerGroup"] for t in triggers} == {f"wecom-stream.{name}"}
        assert scaled["maxReplicaCount"] <= min(by_name(t).partitions for t in processor.inputs)


def test_ingress_has_service_and_hpa_and_probes() -> None:
    docs = {doc["kind"]: doc for doc in documents(K8S / "ingress.yaml")}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_compose_runs_every_processor() -> None:
    compose = documents(REPO / "deploy" / "docker" / "compose.yaml")[0]
    commands = {tuple(svc.get("command", ())) for svc in compose["services"].values()}
    for name in PROCESSOR_NAMES:
        assert ("process", name) in commands
    assert ("ingress",) in commands
    assert ("topics", "create") in commands
