"""The drain's witness: every pod event the API server sends (`kubectl get pods --watch`,
list then watch from the same resourceVersion, so no state is missed), and for each
PodDisruptionBudget the most pods it ever saw unavailable at once, against what the budget
allows."""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.k8s.cluster import LocalKube

__all__ = ["AvailabilityWatch", "Budget", "budgets"]

Obj = dict[str, Any]


@dataclass
class Budget:
    """A PodDisruptionBudget: its selector, the pods it covers when healthy (`expected`) and
    how many of them may be unavailable at once (`allowed`, from its spec)."""

    namespace: str
    name: str
    selector: Obj
    expected: int
    allowed: int
    worst: int = 0
    worst_at: str = "never"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.selector.get("matchLabels", {}).items()):
            return False
        for rule in self.selector.get("matchExpressions", []):
            present, value = rule["key"] in labels, labels.get(rule["key"])
            ok = {
                "In": present and value in rule.get("values", []),
                "NotIn": not present or value not in rule.get("values", []),
                "Exists": present,
                "DoesNotExist": not present,
            }[rule["operator"]]
            if not ok:
                return False
        return True


def _scaled(value: int | str, expected: int) -> int:
    """An IntOrString of a PDB against `expected` pods; percentages round up, as the
    disruption controller rounds them."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value.rstrip("%")) * expected / 100)


def budgets(pdbs: list[Obj], pods: list[Obj]) -> list[Budget]:
    """A Budget per PDB; `expected` is the number of its pods now (all Ready: the caller
    waits for the rollouts first)."""
    found = []
    for pdb in pdbs:
        meta, spec = pdb["metadata"], pdb["spec"]
        budget = Budget(meta["namespace"], meta["name"], spec["selector"], 0, 0)
        budget.expected = sum(
            1
            for pod in pods
            if pod["metadata"]["namespace"] == budget.namespace
            and budget.matches(pod["metadata"].get("labels", {}))
        )
        if "maxUnavailable" in spec:
            budget.allowed = _scaled(spec["maxUnavailable"], budget.expected)
        else:
            budget.allowed = budget.expected - _scaled(spec["minAvailable"], budget.expected)
        budget.allowed = max(0, budget.allowed)
        found.append(budget)
    return found


@dataclass
class _Pod:
    namespace: str
    labels: dict[str, str]
    node: str
    available: bool  # Ready and not being deleted


@dataclass
class AvailabilityWatch:
    """Follows the pods of `budgets`' namespaces from `start` to `stop`."""

    kube: LocalKube
    budgets: list[Budget]
    pods: dict[str, _Pod] = field(default_factory=dict)
    events: int = 0
    armed: bool = False  # the initial list is in and every budget was whole: count from here
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _proc: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        argv = [
            str(self.kube.tools.binary("kubectl")),
            f"--kubeconfig={self.kube.kubeconfig}",
            "get",
            "pods",
            "--all-namespaces",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ]
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def unavailable(self, budget: Budget) -> int:
        with self._lock:
            return self._unavailable(budget)

    def on_node(self, node: str, budget: Budget) -> int:
        """Pods of `budget` on `node` now."""
        with self._lock:
            return sum(1 for pod in self._covered(budget) if pod.node == node)

    def settled(self) -> bool:
        """Armed, and every budget has all its pods available (the view has caught up)."""
        with self._lock:
            return self.armed and all(self._unavailable(b) == 0 for b in self.budgets)

    # ------------------------------------------------------------------ internals
    def _covered(self, budget: Budget) -> list[_Pod]:
        return [
            pod
            for pod in self.pods.values()
            if pod.namespace == budget.namespace and budget.matches(pod.labels)
        ]

    def _unavailable(self, budget: Budget) -> int:
        available = sum(1 for pod in self._covered(budget) if pod.available)
        return max(0, budget.expected - available)

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            buffer += chunk.decode()
            while buffer := buffer.lstrip():
                try:
                    event, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break  # an object still arriving
                buffer = buffer[end:]
                self._apply(event)

    def _apply(self, event: Obj) -> None:
        pod = event["object"]
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        with self._lock:
            self.events += 1
            if event["type"] == "DELETED":
                self.pods.pop(key, None)
            else:
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in pod.get("status", {}).get("conditions", [])
                )
                self.pods[key] = _Pod(
                    meta["namespace"],
                    meta.get("labels", {}),
                    pod["spec"].get("nodeName", ""),
                    ready and "deletionTimestamp" not in meta,
                )
            if not self.armed:
                self.armed = all(self._unavailable(b) == 0 for b in self.budgets)
                return
            for budget in self.budgets:
                if budget.namespace == meta["namespace"]:
                    now = self._unavailable(budget)
                    if now > budget.worst:
                        budget.worst = now
                        budget.worst_at = f"event {self.events}: {event['type']} {key}"
