"""`make deploy-check`: the dashboard, the alert rules and the Prometheus Operator objects of
deploy/monitoring and deploy/k8s/components/monitoring are consistent, offline.

Every PromQL expression parses and type-checks (promql-parser); the PrometheusRule is the
rules file's current rendering; every alert has its labels, annotations and a runbook section;
the dashboard uses its datasource and `$processor` variables; each rendering's ConfigMap is
dashboard.json, its monitors select our Services and pods by ports that exist, and its spool
capacity matches its ingress StatefulSet. (The schemas: tests/deploy/test_manifests.py.)
"""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
import yaml

from schemas.registry import PROCESSOR_NAMES
from tests.conftest import REPO
from tests.deploy.conftest import Objects
from tests.support.monitoring import (
    DASHBOARD,
    MONITORING,
    RULES,
    SYNTHETIC,
    metric_names,
    parse,
    queries,
    recorded_names,
    rule_expressions,
)

OPERATIONS = REPO / "docs" / "operations.md"
SEVERITIES = {"warning", "critical"}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_prometheus_rule_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "deploy_monitoring_render", MONITORING / "render.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.rendered().items():
        assert path.exists(), f"{path} missing: run `make deploy-render`"
        assert path.read_text() == text, f"{path} is stale: run `make deploy-render`"


@pytest.mark.parametrize(("where", "expr"), sorted({**queries(), **rule_expressions()}.items()))
def test_every_expression_parses(where: str, expr: str) -> None:
    try:
        parse(expr)
    except ValueError as exc:
        pytest.fail(f"{where}: {exc}\n{expr}")
    for name in metric_names(expr) - SYNTHETIC - recorded_names():
        assert name.startswith(("wecom_ingress_", "wecom_stream_")), (where, name)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    alerts = _alerts()
    assert len(alerts) >= 9
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        notes = alert["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, name
        doc, _, anchor = notes["runbook_url"].partition("#")
        assert doc == "docs/operations.md", name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"{name}: docs/operations.md has no section {name}"


def test_dashboard_uses_its_variables() -> None:
    doc = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["processor"]["datasource"]["uid"] == "${datasource}"
    panels = doc["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p for p in panels if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Ingress", "Processor $processor"]
    assert rows[1]["repeat"] == "processor"
    in_processor_row = False
    for panel in panels:
        if panel["type"] == "row":
            in_processor_row = panel.get("repeat") == "processor"
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert ('processor=~"$processor"' in target["expr"]) == in_processor_row, panel["title"]


def _with(builds: dict[str, Objects], kind: str) -> dict[str, Objects]:
    return {n: objs for n, objs in builds.items() if any(o["kind"] == kind for o in objs)}


def test_production_and_the_component_ship_the_monitoring_objects(
    builds: dict[str, Objects],
) -> None:
    for kind in ("PrometheusRule", "ServiceMonitor", "PodMonitor"):
        assert set(_with(builds, kind)) == {"overlays/production", "base+components/monitoring"}


def test_dashboard_config_map_is_dashboard_json(builds: dict[str, Objects]) -> None:
    for name, objects in _with(builds, "PrometheusRule").items():
        [cm] = [
            o
            for o in objects
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "wecom-stream-dashboard"
        ]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1", name
        assert cm["data"] == {"wecom-stream.json": DASHBOARD.read_text()}, name


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions with In) against `labels`."""
    if not selector:
        return False
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", ()):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_monitors_select_our_workloads_by_ports_that_exist(builds: dict[str, Objects]) -> None:
    for name, objects in _with(builds, "ServiceMonitor").items():
        of = {k: [o for o in objects if o["kind"] == k] for k in ("Service", "StatefulSet")}
        pods = {s["metadata"]["name"]: s["spec"]["template"] for s in of["StatefulSet"]}
        [service_monitor] = [o for o in objects if o["kind"] == "ServiceMonitor"]
        chosen = [
            s
            for s in of["Service"]
            if _selects(service_monitor["spec"]["selector"], s["metadata"].get("labels", {}))
        ]
        # The headless Service: every ingress pod, also the unready ones (spool full).
        assert [s["metadata"]["name"] for s in chosen] == ["wecom-stream-ingress-pods"], name
        assert chosen[0]["spec"]["publishNotReadyAddresses"] is True
        ports = {p["name"] for p in chosen[0]["spec"]["ports"]}
        assert {e["port"] for e in service_monitor["spec"]["endpoints"]} <= ports, name

        [pod_monitor] = [o for o in objects if o["kind"] == "PodMonitor"]
        scraped = {
            sts: pod
            for sts, pod in pods.items()
            if _selects(pod_monitor["spec"]["selector"], pod["metadata"]["labels"])
        }
        assert set(scraped) == {f"wecom-stream-{p}" for p in PROCESSOR_NAMES}, name
        for sts, pod in scraped.items():
            [container] = pod["spec"]["containers"]
            numbers = {p["name"]: p["containerPort"] for p in container["ports"]}
            env = {e["name"]: e.get("value") for e in container.get("env", ())}
            for endpoint in pod_monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in numbers, (name, sts)
                assert env["WECOM_STREAM_METRICS_PORT"] == str(numbers[endpoint["port"]]), sts


def _capacity(rule: dict[str, Any]) -> int:
    [record] = [
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("record") == "wecom_ingress:spool_capacity_bytes"
    ]
    found = re.fullmatch(r"vector\((\d+)\)", record["expr"])
    assert found, record["expr"]
    return int(found.group(1))


def _spool_cap_per_pod(objects: Objects) -> int:
    [sts] = [
        o
        for o in objects
        if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "wecom-stream-ingress"
    ]
    [container] = sts["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    return workers * int(env["WECOM_STREAM_SPOOL_MAX_BYTES"])


def test_spool_capacity_rule_matches_each_rendering(builds: dict[str, Objects]) -> None:
    plain = {"spec": yaml.safe_load(RULES.read_text())}
    assert _capacity(plain) == _spool_cap_per_pod(builds["base"]), "rules.yaml vs the base"
    for name, objects in _with(builds, "PrometheusRule").items():
        [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
        assert _capacity(rule) == _spool_cap_per_pod(objects), name
