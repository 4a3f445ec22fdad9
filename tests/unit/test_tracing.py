"""W3C trace context: continuing a trace keeps the trace id and flags with a new span id;
absent or invalid headers start a trace; export only when OTEL_* asks; the event-age
histogram's buckets and sum."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.engine._metrics import EventAge
from runtime.tracing import (
    _export_asked,
    configure_tracing,
    continue_trace,
    exporting,
    trace_id_of,
)

VALID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
OUT = "chat.message.v2"
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_parent_is_continued_with_a_new_span_id() -> None:
    child = continue_trace(PARENT)
    assert VALID.match(child)
    assert trace_id_of(child) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child[36:52] != PARENT[36:52]
    assert child.endswith("-01")
    assert continue_trace(PARENT.replace("-01", "-00")).endswith("-00")  # flags kept
    assert len({continue_trace(PARENT) for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    ],
)
def test_an_absent_or_invalid_parent_starts_a_sampled_trace(bad: str | None) -> None:
    child = continue_trace(bad)
    assert VALID.match(child)
    assert trace_id_of(child) != "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.endswith("-01")


def test_what_the_fast_check_refuses_opentelemetry_still_reads() -> None:
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"  # a later version
    assert trace_id_of(continue_trace(future)) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(continue_trace(f" {PARENT} ")) == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("env", "asked"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_export_only_when_the_standard_settings_ask(env: dict[str, str], asked: bool) -> None:
    assert _export_asked(env) is asked
    if not asked:  # installing the SDK is process-global: tests/integration/test_tracing.py
        assert configure_tracing("test", env) is False
        assert not exporting()


def test_event_age_buckets_and_sum() -> None:
    registry = CollectorRegistry()
    ages = EventAge(registry)
    now = 1_000_000
    ages.observe("normalizer", OUT, now, [now - 40, now - 100, now - 2_000])
    ages.observe("normalizer", OUT, now, [now - 7_200_000])
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    assert family.name == "wecom_stream_processor_event_age_seconds"
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for sample in family.samples
        if sample.labels["processor"] == "normalizer" and sample.labels["topic"] == OUT
    }
    bucket = "wecom_stream_processor_event_age_seconds_bucket"
    assert samples[(bucket, "0.05")] == 1
    assert samples[(bucket, "0.1")] == 2  # 100 ms is <= 0.1 s
    assert samples[(bucket, "2.5")] == 3
    assert samples[(bucket, "3600.0")] == 3
    assert samples[(bucket, "+Inf")] == 4
    assert samples[("wecom_stream_processor_event_age_seconds_count", None)] == 4
    assert samples[("wecom_stream_processor_event_age_seconds_sum", None)] == pytest.approx(7202.14)
