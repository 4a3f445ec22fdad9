"""W3C trace context for every process: the `traceparent` each record carries, and span
export when OpenTelemetry's standard settings ask for it.

Propagation is always on. The ingress continues a callback's `traceparent` (or starts a
trace when it has none) into the raw record; every processor continues the input record's
trace into each output and DLQ record: same trace id and flags, a span id of its own
(`continue_trace`). `tracestate` is passed on unchanged where the ingress received one.

Span export is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_TRACES_EXPORTER` is not `none`,
`OTEL_SDK_DISABLED` not `true`): then `configure_tracing` installs the OpenTelemetry SDK
with a batching OTLP/HTTP exporter (every other `OTEL_*` setting applies as the SDK reads
it: service name, headers, sampler …), and `start_span` records a real span whose id is
the one written on the record. Nothing is required at run time: no collector, no SDK setup.

Cost: without export, continuing a trace is a format check and one random span id, about
1 µs (OpenTelemetry's propagator `extract` + `inject` costs ~14 µs here, as much as a
sixth of an ingress request, so it only handles what the check does not accept: another
version of the header, upper-case hex). `bench/tracing.py` measures both.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "SpanKind",
    "configure_tracing",
    "continue_trace",
    "exporting",
    "record_span",
    "start_span",
    "trace_id_of",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_V00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_PROPAGATOR = TraceContextTextMapPropagator()
_rand = random.getrandbits  # what OpenTelemetry's RandomIdGenerator uses
_state: dict[str, Any] = {"tracer": None}


def _export_asked(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install the SDK with an OTLP exporter when the environment asks for export (see the
    module docstring); True if it did. `service`: the default `service.name`."""
    env = os.environ if env is None else env
    if not _export_asked(env):
        _state["tracer"] = None
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _state["tracer"] = provider.get_tracer("wecom-stream")
    return True


def exporting() -> bool:
    """True once `configure_tracing` installed an exporter."""
    return _state["tracer"] is not None


def _new_trace() -> str:
    return f"00-{_rand(128):032x}-{_rand(64):016x}-01"


def _parsed(traceparent: str) -> SpanContext | None:
    """OpenTelemetry's reading of a header the fast check did not accept."""
    context = _PROPAGATOR.extract({TRACEPARENT: traceparent})
    span = trace.get_current_span(context).get_span_context()
    return span if span.is_valid else None


def continue_trace(traceparent: str | None) -> str:
    """A `traceparent` continuing `traceparent`'s trace (same trace id and flags, a new span
    id), or starting a sampled trace when it is absent or invalid."""
    if traceparent:
        if (
            len(traceparent) == 55
            and _V00.fullmatch(traceparent)
            and traceparent[3:35] != _ZERO_TRACE
            and traceparent[36:52] != _ZERO_SPAN
        ):
            return f"{traceparent[:36]}{_rand(64):016x}{traceparent[52:]}"
        parent = _parsed(traceparent.strip())
        if parent is not None:
            return f"00-{parent.trace_id:032x}-{_rand(64):016x}-{int(parent.trace_flags):02x}"
    return _new_trace()


def trace_id_of(traceparent: str) -> str:
    """The trace id (32 hex characters) of a `traceparent` we wrote."""
    return traceparent[3:35]


def record_span(name: str, parent: str | None, kind: SpanKind) -> tuple[Any, str | None]:
    """With export: `start_span`. Without: (None, None) and nothing computed: the caller
    continues the trace (`continue_trace`) only where it writes a record."""
    return start_span(name, parent, kind) if _state["tracer"] is not None else (None, None)


def start_span(name: str, parent: str | None, kind: SpanKind) -> tuple[Any, str]:
    """(a started span to `end()`, or None; the `traceparent` for what it produces). Without
    export this is `continue_trace` and no span."""
    tracer = _state["tracer"]
    if tracer is None:
        return None, continue_trace(parent)
    context = _PROPAGATOR.extract({TRACEPARENT: parent.strip()}) if parent else None
    span = tracer.start_span(name, context=context, kind=kind)
    ids = span.get_span_context()
    flags = int(ids.trace_flags) if ids.trace_flags is not None else int(TraceFlags.SAMPLED)
    return span, f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{flags:02x}"
