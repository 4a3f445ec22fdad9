"""Trace-propagation benchmark: the CPU that W3C trace context adds per ingress request and
per processor record, against the work it joins, measured in the same run (timeit, best of
5 rounds, µs per call).

- Ingress: building the raw record of a realistic message callback (`build_record`: the
  per-request work of routing, ids and headers) vs what propagation adds to a request
  (reading `traceparent` from the request headers, `continue_trace`, appending the header),
  for a callback with a `traceparent` and one without (a new trace).
- Processor: the normalizer's handler on one raw record (headers decoded, fast path) vs what
  propagation adds per record (`continue_trace` of the input's header, the output header)
  plus the event-age bookkeeping (one list append per output).
- Reference: OpenTelemetry's own propagator (`extract` + a span context + `inject`), the
  cost the fast path avoids.

Writes `bench/results/tracing.json`.
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

from bench._run import write_results
from ingress.routing import build_record
from processors.engine import InputRecord
from processors.engine.testing import LocalRun
from processors.normalizer import PROCESSOR
from runtime.tracing import TRACEPARENT, continue_trace
from schemas.cloudevents import header_map
from tests.support.ingress import message

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results" / "tracing.json"
CE_TIME = "2026-12-03T00:00:00.000Z"
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _us(fn: Callable[[], object], number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _ingress() -> dict[str, float]:
    body = message(1, "chat-bench", "token")["data"]
    body.pop("token")
    with_parent = CIMultiDict({"Content-Type": "application/json", TRACEPARENT: PARENT})
    without = CIMultiDict({"Content-Type": "application/json"})

    def record() -> object:
        return build_record(
            "message", {"data": body}, tenant="acme", received="2026-12-03T00:00:00.000Z"
        )

    def propagate(headers: CIMultiDict[str]) -> Callable[[], object]:
        out: list[tuple[str, bytes]] = []

        def run() -> object:
            header = continue_trace(headers.get(TRACEPARENT))
            out.append((TRACEPARENT, header.encode()))
            out.clear()
            return header

        return run

    return {
        "build_record_us": _us(record),
        "propagation_continued_us": _us(propagate(with_parent)),
        "propagation_new_trace_us": _us(propagate(without)),
    }


def _processor() -> dict[str, float]:
    value = orjson.dumps(message(1, "chat-bench", "token"))
    raw_headers = [
        ("ce_id", b"msg-1"), ("ce_time", b"2026-12-03T00:00:00.000Z"), ("tenant", b"acme"),
        (TRACEPARENT, PARENT.encode()),
    ]  # fmt: skip
    counter = iter(range(10**9))
    run = LocalRun(PROCESSOR)
    values = [value.replace(b'"msg-chat-bench-1"', f'"m{n}"'.encode()) for n in range(200_000)]

    def handled() -> object:  # a new messageId each time: the whole path, not a retry
        n = next(counter)
        record = InputRecord(
            "raw.yuju.message.v1", 0, n, b"chat", values[n], header_map(raw_headers), n
        )
        return run.feed(record)

    headers = header_map(raw_headers)
    ages: list[int] = []

    def added() -> object:
        child = continue_trace(headers.get(TRACEPARENT))
        out_headers: list[tuple[str, bytes]] = []
        out_headers.append((TRACEPARENT, child.encode()))
        ages.append(0)
        if len(ages) > 10_000:
            ages.clear()
        return out_headers

    return {"normalizer_handle_us": _us(handled, 20_000), "propagation_and_age_us": _us(added)}


def _opentelemetry() -> float:
    propagator = TraceContextTextMapPropagator()

    def run() -> object:
        parent = trace.get_current_span(propagator.extract({TRACEPARENT: PARENT}))
        ids = parent.get_span_context()
        child = SpanContext(ids.trace_id, 0x1234, False, ids.trace_flags)
        carrier: dict[str, Any] = {}
        propagator.inject(carrier, trace.set_span_in_context(NonRecordingSpan(child)))
        return carrier

    return _us(run)


def main() -> int:
    argparse.ArgumentParser(
        prog="python -m bench.tracing", description=__doc__.split("\n")[0]
    ).parse_args()
    ingress = _ingress()
    processor = _processor()
    otel = _opentelemetry()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "ingress": ingress,
        "processor": processor,
        "opentelemetry_extract_inject_us": otel,
        "ingress_added_over_build_record": ingress["propagation_continued_us"]
        / ingress["build_record_us"],
        "processor_added_over_handle": processor["propagation_and_age_us"]
        / processor["normalizer_handle_us"],
    }
    print(
        f"ingress: +{ingress['propagation_continued_us']:.2f} µs per request with a "
        f"traceparent (+{ingress['propagation_new_trace_us']:.2f} µs starting a trace), "
        f"build_record {ingress['build_record_us']:.2f} µs; processor: "
        f"+{processor['propagation_and_age_us']:.2f} µs per record, normalizer handler "
        f"{processor['normalizer_handle_us']:.2f} µs; OpenTelemetry extract+inject {otel:.2f} µs"
    )
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
