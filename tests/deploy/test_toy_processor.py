"""A processor is one module and one registration, for the deployment too (docs/design.md,
"Add a processor"): with the toy of `tests.support.toy_processor` registered (a plugin folder
on `sys.path`), `deploy/k8s/render.py` renders a copy of the checkout in which the toy has
its StatefulSet, Service, PodDisruptionBudget, ScaledObject, dev and production patches, a
place in the PodMonitor, a compose service and a README row; and every kustomization of
that copy builds and passes the offline validation of `make deploy-check` (the checks of
tests/deploy/test_manifests.py and tests/unit/test_deploy.py, run on the copy)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.registry import PROCESSOR_NAMES, processor_names
from tests.conftest import REPO
from tests.deploy import test_manifests as manifests
from tests.deploy.tools import build_all
from tests.support import toy_processor
from tests.unit import test_deploy as deploy

Objects = list[dict[str, Any]]


def _copy(root: Path) -> Path:
    """What render.py reads and writes, copied under `root` (the Go and Node tools left)."""
    shutil.copytree(
        REPO / "deploy" / "k8s",
        root / "deploy" / "k8s",
        ignore=shutil.ignore_patterns("tools", "node_modules", "validate"),
    )
    shutil.copytree(REPO / "deploy" / "monitoring", root / "deploy" / "monitoring")
    (root / "deploy" / "docker").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "docker" / "compose.yaml", root / "deploy" / "docker")
    shutil.copy(REPO / "README.md", root)
    return root


def _one(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_a_registered_toy_processor_renders_into_valid_manifests(
    kustomize_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(toy_processor.register(tmp_path / "plugins")))
    assert processor_names() == (*PROCESSOR_NAMES, "toy")  # ours first: their ports stay

    root = _copy(tmp_path / "checkout")
    files = deploy._render_module().rendered(root)
    for path, text in files.items():
        assert path.is_relative_to(root), path
        path.write_text(text)
    assert (root / "deploy" / "k8s" / "base" / "toy.yaml") in files

    k8s = root / "deploy" / "k8s"
    builds = build_all(kustomize_bin, tmp_path / "scratch", k8s)
    for where, objects in builds.items():
        for kind in ("StatefulSet", "Service", "PodDisruptionBudget", "ScaledObject"):
            assert _one(objects, kind, "wecom-stream-toy"), f"{where}: {kind}"
    production = builds["overlays/production"]
    (monitor,) = [o for o in production if o["kind"] == "PodMonitor"]
    (selector,) = monitor["spec"]["selector"]["matchExpressions"]
    assert "wecom-stream-toy" in selector["values"]
    sts = _one(production, "StatefulSet", "wecom-stream-toy")
    assert sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "250m",
        "memory": "320Mi",
    }
    dev = _one(builds["overlays/dev"], "ScaledObject", "wecom-stream-toy")
    assert dev["spec"]["maxReplicaCount"] == 2

    # The offline validation of `make deploy-check`, on the copy.
    manifests.test_every_kustomization_builds(builds)
    manifests.test_core_objects_are_valid_kubernetes_1_37(builds)
    manifests.test_custom_resources_match_the_crd_schemas(builds)
    manifests.test_kafka_triggers_use_only_known_parameters(builds)
    manifests.test_references_resolve(builds)
    deploy.test_each_processor_is_a_lag_scaled_stateful_set(builds)
    deploy.test_dev_overlay_is_small_and_prefixed(builds)
    deploy.test_production_overlay_is_replicated_and_authenticated(builds)
    deploy.test_every_workload_is_hardened_and_budgeted(builds)
    deploy.test_env_names_are_settings(builds)

    compose = yaml.safe_load((root / "deploy" / "docker" / "compose.yaml").read_text())
    assert compose["services"]["toy"]["command"] == ["process", "toy"]
    assert "toy-state" in compose["volumes"]
    readme = (root / "README.md").read_text()
    assert "| `toy` | `raw.unrouted.v1` | `chat.message.v2` | `counts` |" in readme
