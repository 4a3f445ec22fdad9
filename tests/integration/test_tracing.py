"""Following one callback end to end by its trace id, through the real broker: the ingress
and the normalizer as `wecom-stream` processes.

- Propagation (always on): a callback's `traceparent` trace id is on its raw record (our own
  span id) and on its ChatMessage (another span id), `tracestate` passed on, the access log
  line carries the trace id; a callback without one starts a trace that its output
  continues; a dead-lettered record continues the trace and its DLQ log line names it.
- Export (only when `OTEL_EXPORTER_OTLP_ENDPOINT` asks): a local OTLP/HTTP receiver gets the
  ingress's SERVER span (child of the caller's span) and the normalizer's CONSUMER span
  (child of the raw record's span), with the ids written on the records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from schemas.cloudevents import event_headers
from tests.support.ingress import message, start_cli_ingress, wait_listening
from tests.support.processes import CliProcess, CliProcesses, wait_for
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKEN = "TOKEN-trace-1c9"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE}-{CALLER_SPAN}-01"
RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"


def log_lines(proc: CliProcess, event: str) -> list[dict[str, Any]]:
    return [
        line
        for line in (orjson.loads(t) for t in proc.log_text().splitlines() if t.startswith("{"))
        if line.get("event") == event
    ]


async def send(url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/notice", data=orjson.dumps(body), headers=headers) as resp,
    ):
        assert resp.status == 200


class OtlpReceiver:
    """A local OTLP/HTTP trace receiver: every exported span, decoded."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.url = ""
        self._server: TestServer | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            attributes = resource.resource.attributes
            service = next(
                (a.value.string_value for a in attributes if a.key == "service.name"), ""
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        {
                            "service": service,
                            "name": span.name,
                            "kind": span.kind,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                        }
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._server = TestServer(app, host="127.0.0.1")  # a free loopback port
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    await otlp.start()
    try:
        yield otlp
    finally:
        await otlp.stop()


async def test_a_callback_is_found_by_its_trace_id_on_its_records_and_in_the_logs(
    cli_processes: CliProcesses,
    registry_topics: list[str],
    kafka_bootstrap: str,
    topic_prefix: str,
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    ingress, url = start_cli_ingress(
        cli_processes, tmp_path / "spool", {"WECOM_STREAM_TENANTS": f"acme={TOKEN}"}
    )
    normalizer = cli_processes.start(
        "process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0"}
    )
    await wait_listening(url, ingress)
    await send(url, message(1, "chat-t", TOKEN), {"traceparent": PARENT, "tracestate": "k=v"})
    await send(url, message(2, "chat-t", TOKEN), {})  # no trace: the ingress starts one
    # A record the normalizer dead-letters (not a message callback), with a trace of its own.
    other = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    headers = [*event_headers(ce_id="x", source="t", ce_type="t", time="2026-12-03T00:00:00.000Z"),
               ("traceparent", other.encode())]  # fmt: skip
    await producer.send_and_wait(topic_prefix + RAW, b'{"not": "a message"}', headers=headers)

    raw = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=3)
    by_id = {r.headers.get("ce_id"): r for r in raw}
    traced, untraced = by_id["msg-chat-t-1"], by_id["msg-chat-t-2"]
    assert traced.headers["traceparent"].startswith(f"00-{TRACE}-")
    assert traced.headers["traceparent"][36:52] != CALLER_SPAN  # the ingress's own span id
    assert traced.headers["tracestate"] == "k=v"
    assert untraced.headers["traceparent"][3:35] != TRACE

    out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=2)
    chat = {r.headers["ce_id"]: r.headers["traceparent"] for r in out}  # ce_id tenant|messageId
    assert chat["acme|msg-chat-t-1"][3:35] == TRACE
    traced_span = traced.headers["traceparent"][36:52]
    assert chat["acme|msg-chat-t-1"][36:52] not in (CALLER_SPAN, traced_span)
    assert chat["acme|msg-chat-t-2"][3:35] == untraced.headers["traceparent"][3:35]

    (dead,) = await read_topic(kafka_bootstrap, topic_prefix + "dlq.normalizer.v1", expect=1)
    assert dead.headers["traceparent"][3:35] == "ab" * 16
    assert dead.headers["traceparent"][36:52] != "cd" * 8

    async def logged() -> bool:
        requests = log_lines(ingress, "request")
        dlq = log_lines(normalizer, "record_dead_lettered")
        return len(requests) >= 2 and len(dlq) >= 1

    await wait_for(logged, what="the access and DLQ log lines")
    assert [line["trace_id"] for line in log_lines(ingress, "request")][:2] == [
        TRACE,
        untraced.headers["traceparent"][3:35],
    ]
    assert log_lines(normalizer, "record_dead_lettered")[0]["trace_id"] == "ab" * 16


async def test_spans_are_exported_only_when_asked_with_the_ids_on_the_records(
    cli_processes: CliProcesses,
    registry_topics: list[str],
    kafka_bootstrap: str,
    topic_prefix: str,
    receiver: OtlpReceiver,
    tmp_path: Path,
) -> None:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    ingress, url = start_cli_ingress(
        cli_processes, tmp_path / "spool", {"WECOM_STREAM_TENANTS": f"acme={TOKEN}", **otel}
    )
    cli_processes.start("process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0", **otel})
    await wait_listening(url, ingress)
    await send(url, message(1, "chat-x", TOKEN), {"traceparent": PARENT})

    (raw,) = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=1)
    (out,) = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=1)
    raw_span = raw.headers["traceparent"][36:52]
    out_span = out.headers["traceparent"][36:52]

    def spans() -> list[dict[str, Any]] | None:
        ours = [s for s in receiver.spans if s["trace_id"] == TRACE]
        return ours if len(ours) >= 2 else None

    exported = await wait_for(spans, timeout_s=30, what="both spans exported")
    server = next(s for s in exported if s["service"] == "wecom-stream-ingress")
    consumer = next(s for s in exported if s["service"] == "wecom-stream-normalizer")
    assert (server["span_id"], server["parent"], server["kind"]) == (raw_span, CALLER_SPAN, 2)
    assert (consumer["span_id"], consumer["parent"], consumer["kind"]) == (out_span, raw_span, 5)
