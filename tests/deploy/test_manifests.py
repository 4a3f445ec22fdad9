"""`make deploy-check`: every rendered kustomization is valid, offline.

Core objects against the Kubernetes 1.37 OpenAPI schemas with unknown fields refused
(kubernetes-validate); KEDA objects against KEDA v2.20.2's CRD schemas and Prometheus Operator
objects against prometheus-operator v0.93.0's (deploy/k8s/crds/) with unknown fields refused,
against @kubernetes-models/keda and /prometheus-operator (Node) and against the kafka scaler's
parameter names; and every reference between objects resolves.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from tests.deploy.conftest import Objects
from tests.deploy.tools import K8S, node_validator

KUBERNETES = "1.37.0"
CRD_GROUPS = {"keda.sh", "monitoring.coreos.com"}
# Created outside git (base/config.yaml, components/kafka-auth/kustomization.yaml).
EXTERNAL_SECRETS = {"wecom-stream-credentials", "wecom-stream-kafka-auth"}
# The kafka scaler's parameters (KEDA v2.20.2 pkg/scalers/kafka_scaler.go, `keda:"name=..."`
# tags): KEDA ignores any other key, so a misspelt one would silently fall back to a default.
KAFKA_METADATA = {
    "bootstrapServers", "consumerGroup", "topic", "partitionLimitation", "lagThreshold",
    "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers",
    "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions", "version", "tls", "unsafeSsl", "sasl",
    "saslTokenProvider", "awsRegion",
}  # fmt: skip
KAFKA_AUTH = {
    "tls", "ca", "cert", "key", "keyPassword", "sasl", "username", "password",
    "saslTokenProvider", "scopes", "oauthTokenEndpointUri", "oauthExtensions", "keytab",
    "realm", "kerberosConfig", "kerberosServiceName", "kerberosDisableFAST",
}  # fmt: skip


def _group(obj: dict[str, Any]) -> str:
    api = str(obj["apiVersion"])
    return api.split("/")[0] if "/" in api else ""


def _objects(builds: dict[str, Objects], custom: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, objects in builds.items():
        for obj in objects:
            if (_group(obj) in CRD_GROUPS) == custom:
                yield f"{name}: {obj['kind']}/{obj['metadata']['name']}", obj


def test_every_kustomization_builds(builds: dict[str, Objects]) -> None:
    assert {"base", "overlays/dev", "overlays/production", "base+components/kafka-auth"} <= set(
        builds
    )
    for name, objects in builds.items():
        kinds = {o["kind"] for o in objects}
        assert {"StatefulSet", "Service", "PodDisruptionBudget", "ScaledObject"} <= kinds, name


def test_core_objects_are_valid_kubernetes_1_37(builds: dict[str, Objects]) -> None:
    errors = []
    for where, obj in _objects(builds, custom=False):
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{where}: /{path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no Kubernetes {KUBERNETES} schema for {obj['apiVersion']}")
    assert not errors, "\n".join(errors)


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (the API server would prune them silently)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    nested = ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not")
    out = {k: _strict(v) if k in nested else v for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    return out


@cache
def _crd_schemas() -> dict[tuple[str, str], Any]:
    schemas = {}
    for path in sorted((K8S / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                api = f"{spec['group']}/{version['name']}"
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schemas[(api, spec["names"]["kind"])] = schema
    return schemas


def test_custom_resources_match_the_crd_schemas(builds: dict[str, Objects]) -> None:
    errors = []
    for where, obj in _objects(builds, custom=True):
        schema = _crd_schemas().get((obj["apiVersion"], obj["kind"]))
        if schema is None:
            errors.append(f"{where}: no CRD in deploy/k8s/crds for {obj['apiVersion']}")
            continue
        # OpenAPI v3.0 schemas: draft 4 semantics (boolean exclusiveMinimum/Maximum).
        for error in jsonschema.Draft4Validator(schema).iter_errors(obj):
            path = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{where}: /{path}: {error.message}")
    assert not errors, "\n".join(errors)


def test_custom_resources_pass_kubernetes_models(builds: dict[str, Objects]) -> None:
    command = node_validator(install=True)
    if command is None:
        pytest.skip("node and npm are not on PATH: @kubernetes-models cannot run")
    objects = [obj for _, obj in _objects(builds, custom=True)]
    out = subprocess.run(
        command, input=json.dumps(objects), capture_output=True, text=True, check=False
    )
    results = [json.loads(line) for line in out.stdout.splitlines()]
    errors = [f"{r['kind']}/{r['name']}: {e}" for r in results for e in r["errors"]]
    assert not errors, "\n".join(errors)
    assert out.returncode == 0, out.stderr
    assert len(results) == len(objects)


def test_kafka_triggers_use_only_known_parameters(builds: dict[str, Objects]) -> None:
    for where, obj in _objects(builds, custom=True):
        if obj["kind"] == "ScaledObject":
            for trigger in obj["spec"]["triggers"]:
                assert trigger["type"] == "kafka", where
                assert set(trigger["metadata"]) <= KAFKA_METADATA, where
        elif obj["kind"] == "TriggerAuthentication":
            assert {r["parameter"] for r in obj["spec"]["secretTargetRef"]} <= KAFKA_AUTH, where


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def _pod_refs(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a pod template reads."""
    for container in pod["containers"]:
        for source in container.get("envFrom", ()):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    yield kind, source[key]["name"]
        for env in container.get("env", ()):
            ref = env.get("valueFrom", {})
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in ref:
                    yield kind, ref[key]["name"]
    for volume in pod.get("volumes", ()):
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]


def test_references_resolve(builds: dict[str, Objects]) -> None:
    for name, objects in builds.items():
        named = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        workloads = [o for o in objects if o["kind"] == "StatefulSet"]
        pods = {w["metadata"]["name"]: w["spec"]["template"] for w in workloads}
        for sts in workloads:
            where = f"{name}: StatefulSet/{sts['metadata']['name']}"
            spec, pod = sts["spec"], sts["spec"]["template"]
            governing = named.get(("Service", spec["serviceName"]))
            assert governing, f"{where}: no Service {spec['serviceName']}"
            assert governing["spec"].get("clusterIP") == "None", where
            assert _selects(spec["selector"]["matchLabels"], pod["metadata"]["labels"]), where
            volumes = {v["name"] for v in pod["spec"].get("volumes", ())}
            volumes |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", ())}
            for container in pod["spec"]["containers"]:
                mounts = {m["name"] for m in container.get("volumeMounts", ())}
                assert mounts <= volumes, f"{where}: mounts {mounts - volumes} have no volume"
                ports = {p["name"] for p in container.get("ports", ())}
                for probe in ("readinessProbe", "livenessProbe"):
                    assert container[probe]["httpGet"]["port"] in ports, f"{where}: {probe}"
            for kind, ref in _pod_refs(pod["spec"]):
                assert (kind, ref) in named or (kind == "Secret" and ref in EXTERNAL_SECRETS), (
                    f"{where}: {kind} {ref} is neither built nor a documented external Secret"
                )
        for svc in (o for o in objects if o["kind"] == "Service"):
            where = f"{name}: Service/{svc['metadata']['name']}"
            selector = svc["spec"]["selector"]
            backends = [p for p in pods.values() if _selects(selector, p["metadata"]["labels"])]
            assert len(backends) == 1, f"{where} selects {len(backends)} workloads"
            ports = {p["name"] for c in backends[0]["spec"]["containers"] for p in c["ports"]}
            assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports, where
        for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
            selector = pdb["spec"]["selector"]["matchLabels"]
            chosen = [p for p in pods.values() if _selects(selector, p["metadata"]["labels"])]
            assert len(chosen) == 1, f"{name}: PDB/{pdb['metadata']['name']}"
        for so in (o for o in objects if o["kind"] == "ScaledObject"):
            where = f"{name}: ScaledObject/{so['metadata']['name']}"
            target = so["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) in named, where
            for trigger in so["spec"]["triggers"]:
                if "authenticationRef" in trigger:
                    ref = trigger["authenticationRef"]
                    assert (ref.get("kind", "TriggerAuthentication"), ref["name"]) in named, where
        for auth in (o for o in objects if o["kind"] == "TriggerAuthentication"):
            for ref in auth["spec"]["secretTargetRef"]:
                assert ("Secret", ref["name"]) in named or ref["name"] in EXTERNAL_SECRETS
