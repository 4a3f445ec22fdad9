"""The PromQL of deploy/monitoring: every dashboard query and rule expression, and the metric
names they read (parsed with promql-parser), for the checks in tests/deploy and the scrape
check in tests/integration/test_monitoring_metrics.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

__all__ = [
    "DASHBOARD",
    "MONITORING",
    "RULES",
    "SYNTHETIC",
    "exported_names",
    "metric_names",
    "parse",
    "queries",
    "recorded_names",
    "rule_expressions",
]

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
RULES = MONITORING / "rules.yaml"

SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
"""Series Prometheus makes itself (never on a /metrics page)."""

# Grafana's variables, as the values a query sees: a range for the interval macros, a
# regex-safe word for template variables inside label matchers.
_GRAFANA = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{?(\w+)\}?")


def _grafana_free(expr: str) -> str:
    return _GRAFANA.sub(lambda m: "5m" if m.group(1) else "x", expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def queries() -> dict[str, str]:
    """{"dashboard: <panel title> <refId>": PromQL with Grafana's variables replaced}."""
    doc = json.loads(DASHBOARD.read_text())
    out = {}
    for panel in _panels(doc["panels"]):
        for target in panel.get("targets", ()):
            out[f"dashboard: {panel['title']} {target['refId']}"] = _grafana_free(target["expr"])
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert found, variable["definition"]
            out[f"dashboard: ${variable['name']}"] = found.group(1)
    return out


def _rules() -> Iterator[dict[str, Any]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        yield from group["rules"]


def rule_expressions() -> dict[str, str]:
    """{"rule: <alert or record name>": expr} of deploy/monitoring/rules.yaml."""
    return {f"rule: {r.get('alert') or r['record']}": str(r["expr"]) for r in _rules()}


def recorded_names() -> set[str]:
    """Series that our recording rules make (not exported by any process)."""
    return {r["record"] for r in _rules() if "record" in r}


def parse(expr: str) -> promql_parser.Expr:
    """The parsed expression; ValueError for a syntax or type error."""
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (as written: `x_bucket`, `y_total`)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next(
                (m.value for m in node.matchers.matchers if m.name == "__name__"), None
            )
            assert name, f"a selector without a metric name in {expr!r}"
            names.add(name)
        return True

    promql_parser.walk(parse(expr), visit)
    return names


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_names(text: str) -> tuple[set[str], set[str]]:
    """(names a scrape declares, names it has samples of) for Prometheus text `text`: a
    counter `x` declares `x_total`, a histogram `h` declares `h_bucket`, `h_sum`, `h_count`."""
    from prometheus_client.parser import text_string_to_metric_families

    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = _SUFFIXES.get(family.type, ("",))
        declared |= {family.name + s for s in suffixes}
        sampled |= {sample.name for sample in family.samples}
    return declared, sampled
