"""`kubectl drain` of the node that holds every pod, held by our PodDisruptionBudgets.

Setup: every rendering applied and rolled out while only `kwok-node-0` was schedulable, so
each workload has all its pods there (the ingress StatefulSet's 2-3 pods: more than its
budget's `maxUnavailable: 1`). Then `kwok-node-1` is uncordoned and `kwok-node-0` drained;
kubectl asks the eviction API for every pod at once and retries refusals every 5 s.

What it proves, for each budget:
1. Never more pods unavailable than it allows: every pod event the API server sent from
   before the drain until all pods were Ready again on the other node (a list + watch, not
   samples) was replayed, and the budget's count of Ready, non-terminating pods never fell
   below `expected - allowed`.
2. The budget is what held them: each budget with more pods on the drained node than it
   allows to be unavailable had an eviction refused with the eviction API's "Cannot evict
   pod as it would violate the pod's disruption budget" (kubectl's retry message), so (1)
   is not a matter of timing.
3. The drain completes (the budgets slow it, never deadlock it: `maxUnavailable`
   works for one replica too), no pod of ours is left on the drained node, and every
   workload rolls out again on the other one.

kwok deletes a terminating pod 1 s after its deletion starts (tests/k8s/stages/pod-delete.yaml
says why: kwok's instant deletion lets a re-created StatefulSet pod inherit its predecessor's
entry in the budget's disruptedPods and stalls the drain for 2 minutes).
"""

from __future__ import annotations

import re
from typing import Any

from tests.k8s.availability import AvailabilityWatch, Budget, budgets
from tests.k8s.cluster import LocalKube
from tests.k8s.conftest import CORDONED, NODES
from tests.k8s.deploy import Applied, Deployer
from tests.k8s.manifests import discover
from tests.k8s.tools import wait_until

Obj = dict[str, Any]

DRAINED = next(node for node in NODES if node != CORDONED)
DRAIN_TIMEOUT_S = 120
REFUSED = re.compile(
    r'error when evicting pods/"(?P<pod>[^"]+)" -n "(?P<ns>[^"]+)".*'
    r"Cannot evict pod as it would violate the pod's disruption budget"
)


def test_drain_is_held_by_the_disruption_budgets(kube: LocalKube, deployer: Deployer) -> None:
    everything = [deployer.apply(rendering) for rendering in discover()]
    for applied in everything:
        deployer.rollout(applied)
    namespaces = {applied.namespace for applied in everything}
    pods = [p for p in kube.get_json("pods", "-A")["items"] if _ours(p, namespaces)]
    pdbs = [p for p in kube.get_json("pdb", "-A")["items"] if _ours(p, namespaces)]
    held = budgets(pdbs, pods)
    assert held, "no PodDisruptionBudget rendered"
    assert all(budget.expected for budget in held), [b.key for b in held if not b.expected]
    assert {p["spec"]["nodeName"] for p in pods} == {DRAINED}, "pods outside the drained node"

    watch = AvailabilityWatch(kube, held)
    watch.start()
    try:
        wait_until(watch.settled, timeout_s=30, what="the pod watch's initial list")
        crowded = [b for b in held if watch.on_node(DRAINED, b) > b.allowed]
        assert crowded, "no workload has more pods on the node than its budget lets go"

        kube.kubectl("uncordon", CORDONED)
        drain = kube.kubectl(
            "drain",
            DRAINED,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            f"--timeout={DRAIN_TIMEOUT_S}s",
            timeout_s=DRAIN_TIMEOUT_S + 30,
            check=False,
        )
        output = drain.stderr + drain.stdout
        (kube.work / "drain.log").write_text(output)  # kept with the components' logs
        assert drain.returncode == 0, f"{output}\nbudgets now: {_budget_status(kube, namespaces)}"
        _rolled_out_again(deployer, everything)
        wait_until(watch.settled, timeout_s=30, what="every budget whole again in the watch")
    finally:
        watch.stop()

    over = {b.key: (b.worst, b.allowed, b.worst_at) for b in held if b.worst > b.allowed}
    assert not over, f"more pods unavailable than the budget allows (worst, allowed, when): {over}"
    refused = {(m["ns"], m["pod"]) for m in REFUSED.finditer(output)}
    unrefused = [
        b.key
        for b in crowded
        if not any(ns == b.namespace and _covers(b, pods, pod) for ns, pod in refused)
    ]
    assert not unrefused, f"no eviction refused for {unrefused}; drain said:\n{output}"
    left = [p["metadata"]["name"] for p in _pods_on(kube, DRAINED, namespaces)]
    assert not left, f"left on {DRAINED}: {left}"


def _ours(obj: Obj, namespaces: set[str]) -> bool:
    return bool(obj["metadata"]["namespace"] in namespaces)


def _covers(budget: Budget, pods: list[Obj], name: str) -> bool:
    """Whether the pod `name` (as listed before the drain) is one of `budget`'s."""
    return any(
        pod["metadata"]["name"] == name
        and pod["metadata"]["namespace"] == budget.namespace
        and budget.matches(pod["metadata"].get("labels", {}))
        for pod in pods
    )


def _pods_on(kube: LocalKube, node: str, namespaces: set[str]) -> list[Obj]:
    listed = kube.get_json("pods", "-A", f"--field-selector=spec.nodeName={node}")["items"]
    return [p for p in listed if _ours(p, namespaces)]


def _budget_status(kube: LocalKube, namespaces: set[str]) -> list[Obj]:
    return [
        {"pdb": f"{p['metadata']['namespace']}/{p['metadata']['name']}", **p.get("status", {})}
        for p in kube.get_json("pdb", "-A")["items"]
        if _ours(p, namespaces)
    ]


def _rolled_out_again(deployer: Deployer, everything: list[Applied]) -> None:
    for applied in everything:
        deployer.rollout(applied)
