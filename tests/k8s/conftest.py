"""Session fixtures of `make test-k8s`: the control plane (always stopped at the end, and
checked to have exited), the CRDs our manifests need, two kwok nodes and the Deployer.

Nodes: `kwok-node-0` takes every pod while `kwok-node-1` is cordoned, so that the drain test
finds whole workloads on one node and the disruption budgets have something to hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.cluster import LocalKube
from tests.k8s.deploy import Deployer
from tests.k8s.manifests import K8S
from tests.k8s.tools import Tools, wait_until

NODES = ("kwok-node-0", "kwok-node-1")
CORDONED = "kwok-node-1"


@pytest.fixture(scope="session")
def tools() -> Tools:
    try:
        return Tools.locate()
    except FileNotFoundError as missing:
        pytest.fail(str(missing))


@pytest.fixture(scope="session")
def kube(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKube]:
    """A running control plane with the CRDs established and both nodes Ready."""
    local = LocalKube(tools, tmp_path_factory.mktemp("kube"))
    try:
        local.start()
        _apply_crds(local)
        _add_nodes(local)
        yield local
        crashed = local.exited()
        assert not crashed, f"control-plane processes exited during the tests: {crashed}"
    finally:
        local.stop()
    assert not local.running(), f"still running after stop: {local.running()}"


@pytest.fixture(scope="session")
def deployer(kube: LocalKube, tmp_path_factory: pytest.TempPathFactory) -> Deployer:
    return Deployer(kube, kube.tools.binary("kustomize"), tmp_path_factory.mktemp("volumes"))


def _apply_crds(kube: LocalKube) -> None:
    for path in sorted((K8S / "crds").glob("*.yaml")):
        kube.kubectl("apply", "--server-side", "--field-manager=test-k8s", "-f", str(path))
    kube.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def _add_nodes(kube: LocalKube) -> None:
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},  # kwok manages it
                "labels": {"kubernetes.io/hostname": name, "type": "kwok"},
            },
            "spec": {"unschedulable": name == CORDONED},
        }
        for name in NODES
    ]
    kube.apply_objects(nodes)

    def ready() -> bool:
        listed = kube.get_json("nodes")["items"]
        return len(listed) == len(NODES) and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
            for n in listed
        )

    wait_until(ready, timeout_s=30, what="Ready kwok nodes", detail=lambda: _log_tail(kube))


def _log_tail(kube: LocalKube) -> str:
    path: Path = kube.work / "kwok.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-10:])
