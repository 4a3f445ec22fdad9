"""The deploy manifests agree with the code: the generated trigger files are current; in every
rendering (base, overlays, base + kafka-auth) each processor is a lag-scaled StatefulSet with
its real consumer group and topics under the overlay's prefix, never more replicas than
partitions; the ingress keeps its spool on a claim per pod; every workload is hardened and
has a disruption budget; env names are real settings; the images match the local setup.

The renderings need the pinned kustomize (`make deploy-check` installs it); without it those
tests skip and `make deploy-check` covers them.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from processors.engine import Names
from processors.runner import load_processor
from runtime.settings import (
    IngressSettings,
    KafkaSecurity,
    ProcessorSettings,
    SchemaRegistrySettings,
)
from schemas.registry import PROCESSOR_NAMES, by_name, processor_names
from tests.conftest import REPO
from tests.deploy.tools import build_all, kustomizations, kustomize
from wecom_stream.localkafka import KAFKA_VERSION

K8S = REPO / "deploy" / "k8s"
DOCKER = REPO / "deploy" / "docker"
Objects = list[dict[str, Any]]


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_k8s_render", K8S / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documents(path: Path) -> Objects:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_generated_files_are_current() -> None:
    for path, text in _render_module().rendered().items():
        assert path.exists(), f"{path} missing: run `make deploy-render`"
        assert path.read_text() == text, f"{path} is stale: run `make deploy-render`"


def _listed(kustomization: Path) -> set[str]:
    doc = documents(kustomization)[0]
    names = [*doc.get("resources", ()), *doc.get("components", ())]
    names += [p["path"] for p in doc.get("patches", ()) if "path" in p]
    return {n for n in names if not n.startswith("..")}


@pytest.mark.parametrize(
    "directory",
    [*kustomizations(), *sorted(p.parent for p in K8S.glob("components/*/kustomization.yaml"))],
    ids=lambda p: str(p.relative_to(K8S)),
)
def test_kustomizations_list_every_file(directory: Path) -> None:
    present = {p.name for p in directory.iterdir() if p.suffix == ".yaml" or p.is_dir()}
    present -= {"kustomization.yaml", "secret.example.yaml"}  # the example is not applied
    assert _listed(directory / "kustomization.yaml") == present


def test_every_overlay_uses_its_generated_triggers() -> None:
    for overlay in kustomizations()[1:]:
        assert "triggers" in documents(overlay / "kustomization.yaml")[0]["components"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Objects]:
    binary = kustomize(install=False)
    if binary is None:
        pytest.skip("kustomize v5.8.2 not installed (make deploy-check installs it)")
    return build_all(binary, tmp_path_factory.mktemp("kustomize"))


def _one(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _config(objects: Objects) -> dict[str, str]:
    return dict(_one(objects, "ConfigMap", "wecom-stream")["data"])


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", ()) if "value" in e}


def test_each_processor_is_a_lag_scaled_stateful_set(rendered: dict[str, Objects]) -> None:
    for where, objects in rendered.items():
        config = _config(objects)
        prefix = config.get("WECOM_STREAM_TOPIC_PREFIX", "")
        for name in processor_names():  # read now: tests/deploy/test_toy_processor.py adds one
            sts = _one(objects, "StatefulSet", f"wecom-stream-{name}")
            spec = sts["spec"]
            assert "replicas" not in spec, f"{where}: KEDA owns the replica count of {name}"
            assert _one(objects, "Service", spec["serviceName"])["spec"]["clusterIP"] == "None"
            container = _container(sts)
            assert container["args"] == ["process", name]
            env = _env(container)
            (claim,) = spec["volumeClaimTemplates"]
            mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert env["WECOM_STREAM_STATE_DIR"] == mount[claim["metadata"]["name"]]
            assert env["WECOM_STREAM_STORE_KIND"] == "disk"
            assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert {"name": "metrics", "containerPort": int(env["WECOM_STREAM_METRICS_PORT"])} in (
                container["ports"]
            )
            scaled = _one(objects, "ScaledObject", f"wecom-stream-{name}")["spec"]
            target = scaled["scaleTargetRef"]
            assert (target["kind"], target["name"]) == ("StatefulSet", sts["metadata"]["name"])
            processor = load_processor(name, ProcessorSettings())
            inputs = processor.inputs
            names = Names.of(processor, prefix)
            triggers = [t["metadata"] for t in scaled["triggers"]]
            assert [t["topic"] for t in triggers] == [names.topic(t) for t in inputs], where
            assert {t["consumerGroup"] for t in triggers} == {names.group}, where
            assert {t["bootstrapServers"] for t in triggers} == {
                config["KAFKA_BOOTSTRAP_SERVERS"]
            }, where
            assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
            assert scaled["maxReplicaCount"] <= min(by_name(t).partitions for t in inputs)


def test_dev_overlay_is_small_and_prefixed(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/dev"]
    config = _config(objects)
    assert config["WECOM_STREAM_TOPIC_PREFIX"] == "dev."
    assert config["WECOM_STREAM_REPLICATION_FACTOR"] == "1"
    assert _one(objects, "StatefulSet", "wecom-stream-ingress")["spec"]["replicas"] == 1
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        assert so["spec"]["minReplicaCount"] == 1
        for trigger in so["spec"]["triggers"]:
            assert trigger["metadata"]["topic"].startswith("dev.raw.")
            assert trigger["metadata"]["consumerGroup"].startswith("dev.wecom-stream.")


def test_production_overlay_is_replicated_and_authenticated(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/production"]
    config = _config(objects)
    assert config["WECOM_STREAM_REPLICATION_FACTOR"] == "3"
    assert config["WECOM_STREAM_KAFKA_SECURITY_PROTOCOL"].startswith("SASL_")
    assert _one(objects, "StatefulSet", "wecom-stream-ingress")["spec"]["replicas"] >= 2
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        assert so["spec"]["minReplicaCount"] >= 2
        for trigger in so["spec"]["triggers"]:
            assert trigger["authenticationRef"] == {"name": "wecom-stream-kafka"}
    image = _container(_one(objects, "StatefulSet", "wecom-stream-ingress"))["image"]
    assert not image.endswith(":latest")


def _bytes(quantity: str) -> int:
    """A Kubernetes quantity in bytes (the binary suffixes we use)."""
    match = re.fullmatch(r"(\d+)([KMGT]i)?", quantity)
    assert match, f"unexpected quantity {quantity!r}"
    number, unit = match.group(1), match.group(2)
    power = "KMGT".index(unit[0]) + 1 if unit else 0
    return int(number) << (10 * power)


def test_ingress_keeps_its_spool_on_a_claim_per_pod(rendered: dict[str, Objects]) -> None:
    for where, objects in rendered.items():
        sts = _one(objects, "StatefulSet", "wecom-stream-ingress")
        spec = sts["spec"]
        assert spec["persistentVolumeClaimRetentionPolicy"] == {
            "whenScaled": "Retain",
            "whenDeleted": "Retain",
        }, f"{where}: a removed ordinal's claim holds acknowledged callbacks"
        container = _container(sts)
        env = _env(container)
        (claim,) = spec["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["WECOM_STREAM_SPOOL_DIR"] == mounts[claim["metadata"]["name"]]
        workers = int(container["args"][container["args"].index("--workers") + 1])
        per_worker = int(env["WECOM_STREAM_SPOOL_MAX_BYTES"])
        size = _bytes(claim["spec"]["resources"]["requests"]["storage"])
        assert size > workers * per_worker, f"{where}: the claim must hold every worker's spool"
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        produce_deadline = IngressSettings.model_fields["produce_timeout_s"]
        assert any(getattr(m, "lt", None) == 5 for m in produce_deadline.metadata)
        # preStop, then in-flight requests (each at most the produce deadline, < 5 s) and the
        # producer's 5 s flush before SIGKILL.
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= pause + 5 + 5 + 10
        traffic = _one(objects, "Service", "wecom-stream-ingress")["spec"]
        assert traffic.get("clusterIP") != "None"
        assert _one(objects, "Service", spec["serviceName"])["spec"]["clusterIP"] == "None"
        assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def _dockerfile_user() -> int:
    (user,) = re.findall(r"^USER (\d+)", (DOCKER / "Dockerfile").read_text(), re.M)
    return int(user)


def test_every_workload_is_hardened_and_budgeted(rendered: dict[str, Objects]) -> None:
    uid = _dockerfile_user()
    for where, objects in rendered.items():
        budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        for sts in (o for o in objects if o["kind"] == "StatefulSet"):
            name = f"{where}: {sts['metadata']['name']}"
            labels = sts["spec"]["template"]["metadata"]["labels"]
            assert [
                b
                for b in budgets
                if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
                and b["spec"].get("maxUnavailable") == 1
            ], f"{name}: no PodDisruptionBudget"
            pod = sts["spec"]["template"]["spec"]
            assert pod["securityContext"] == pod["securityContext"] | {
                "runAsNonRoot": True,
                "runAsUser": uid,
                "runAsGroup": uid,
                "fsGroup": uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            }, name
            assert pod["terminationGracePeriodSeconds"] >= 30, name
            for container in pod["containers"]:
                assert container["securityContext"] == {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                }, name
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]), name
                assert "memory" in resources["limits"], name
                assert _bytes(resources["requests"]["memory"]) <= _bytes(
                    resources["limits"]["memory"]
                )
                tmp = "/tmp"  # noqa: S108 - an emptyDir, for the read-only root filesystem
                assert tmp in {m["mountPath"] for m in container["volumeMounts"]}, name


def _setting_env_names() -> set[str]:
    names = {"KAFKA_BOOTSTRAP_SERVERS"}
    for model, prefix in (
        (IngressSettings, "WECOM_STREAM_"),
        (ProcessorSettings, "WECOM_STREAM_"),
        (SchemaRegistrySettings, "WECOM_STREAM_"),
        (KafkaSecurity, "WECOM_STREAM_KAFKA_"),
    ):
        names |= {prefix + field.upper() for field in model.model_fields}
    return names


def test_env_names_are_settings(rendered: dict[str, Objects]) -> None:
    known = _setting_env_names()
    for where, objects in rendered.items():
        used = set(_config(objects))
        for sts in (o for o in objects if o["kind"] == "StatefulSet"):
            used |= {e["name"] for e in _container(sts).get("env", ())}
        assert used <= known, f"{where}: not a setting: {sorted(used - known)}"


def test_schemas_are_published_by_a_job_before_a_rollout(rendered: dict[str, Objects]) -> None:
    """Every rendering has the Job: `schemas publish` with the processes' ConfigMap (the
    registry URL and topic prefix), an Argo CD PreSync hook, recreated after it finished,
    hardened like the workloads."""
    uid = _dockerfile_user()
    for where, objects in rendered.items():
        (job,) = [o for o in objects if o["kind"] == "Job"]
        assert job["metadata"]["name"] == "wecom-stream-schemas", where
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
        assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "schemas"
        assert 0 < job["spec"]["ttlSecondsAfterFinished"] <= 3600, where
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsUser"] == uid
        (container,) = pod["containers"]
        assert container["args"] == ["schemas", "publish"]
        assert {"configMapRef": {"name": "wecom-stream"}} in container["envFrom"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        config = _config(objects)
        assert config["WECOM_STREAM_SCHEMA_REGISTRY_URL"].startswith("http"), where


def test_compose_runs_every_processor() -> None:
    compose = documents(DOCKER / "compose.yaml")[0]
    commands = {tuple(svc.get("command", ())) for svc in compose["services"].values()}
    for name in PROCESSOR_NAMES:
        assert ("process", name) in commands
    assert ("ingress",) in commands
    assert ("topics", "create") in commands


def test_images_use_the_local_kafka_and_python() -> None:
    compose = documents(DOCKER / "compose.yaml")[0]
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    python = pyproject["tool"]["mypy"]["python_version"]
    dockerfile = (DOCKER / "Dockerfile").read_text()
    # The base is the build argument everywhere, by default python:<version>-slim by digest.
    (default,) = re.findall(
        r"^ARG BASE_IMAGE=python:(\S+)-slim@sha256:[0-9a-f]{64}$", dockerfile, re.M
    )
    assert default == python
    assert set(re.findall(r"^FROM (\S+)", dockerfile, re.M)) == {"${BASE_IMAGE}"}
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["args"] == ["BASE_IMAGE"], name
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, re.M))
    packages = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    included = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"])
    assert packages | included <= copied
