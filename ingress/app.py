"""One ingress worker's HTTP handler (routes, auth, responses, logs, metrics) and lifecycle.

`IngressApp(settings, bootstrap=...)`: `start()` opens the spools, the producer and the
drainer, `stop()` closes them, `server()` is the aiohttp low-level `web.Server` that serves
`handle`. Responses: `200 {}` once the record is acknowledged by Kafka or fsync'd to the
spool; `400` not JSON (or NaN, an overflowing number, nesting too deep, a body that is not
what its Content-Encoding says); `401` bad credential, or a platform whose credential is not
configured (nothing stored); `404` unknown path; `405` a method other than GET/POST; `408` a
body too slow; `413` body over the limit, or a record over its topic's `max.message.bytes`;
`415` an encoding we do not decode; `503` only when Kafka is unreachable and the spool cannot
take the record. Every error body is JSON `{"error": "..."}` (docs/design.md, "Responses").

Why the low-level server and not a `web.Application`: the ingress has one catch-all route
and three GET probes, which a dict lookup dispatches. The application layer (a `web.Request`
with its match info, the router's resolve, the middleware loop, the response-prepare
signal) cost ~6 µs of CPU a request on this machine (bare handler, 3 interleaved pairs:
38.9 vs 33.2 µs), ~7 % of a durable callback (docs/benchmarks.md, "Ingress against
Benthos").
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ingress._access import AccessLog
from ingress._clock import ce_time
from ingress._limits import oversize
from ingress._metrics import IngressMetrics
from ingress._request import CLIENT_ERRORS, BodyRefused, read_body, trace_parent, trace_state
from ingress.publisher import Outcome, Publisher
from ingress.routing import (
    Auth,
    BodyError,
    RouteKind,
    build_record,
    match_path,
    parse_body,
    split_token,
)
from ingress.spool import Spool, SpoolLockedError, SpoolRecord
from runtime.logs import get_logger
from runtime.settings import IngressSettings
from runtime.tracing import TRACEPARENT, TRACESTATE, SpanKind, start_span, trace_id_of

__all__ = ["IngressApp", "worker_spools"]

log = get_logger("ingress.app")
_EMPTY = b"{}"
_SERVER = SpanKind.SERVER
_WORKER_DIR = re.compile(r"^worker-(\d+)$")
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
TracedHandler = Callable[["IngressApp", web.BaseRequest, "_Trace"], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class _Trace:
    """What the access log line says about one request (never the body or the query)."""

    route: str = "unknown"
    trace_id: str | None = None
    ce_id: str | None = None
    topic: str | None = None
    outcome: str | None = None


def _json(status: int, body: dict[str, object] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=_EMPTY if body is None else orjson.dumps(body),
        content_type="application/json",
    )


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


def worker_spools(root: Path, index: int, workers: int) -> tuple[Path, list[Path]]:
    """This worker's spool dir and the dirs it adopts: those of a previous run's worker
    `j >= workers` with `j % workers == index` (drained first, then removed)."""
    adopted: list[tuple[int, Path]] = []
    if root.is_dir():
        for path in root.iterdir():
            match = _WORKER_DIR.match(path.name)
            if match and path.is_dir():
                j = int(match.group(1))
                if j >= workers and j % workers == index:
                    adopted.append((j, path))
    return root / f"worker-{index}", [p for _, p in sorted(adopted)]


async def _callback(app: IngressApp, request: web.BaseRequest, trace: _Trace) -> web.StreamResponse:
    matched = match_path(request.path)
    if matched is None:
        return _error(404, "unknown path; see the README for the callback paths")
    trace.route = matched[1]
    if request.method not in ("GET", "POST"):
        return _error(405, "use POST (or GET with a JSON body)")
    prefix, kind = matched
    refused = _refused(app.auth, prefix, kind, request)
    if refused is not None:
        return refused
    settings = app.settings
    try:
        raw = await read_body(request, settings.max_body_bytes, settings.body_read_timeout_s)
    except BodyRefused as exc:
        response = _error(exc.status, exc.message)
        if exc.close:
            response.force_close()
        return response
    publisher = app.publisher
    headers = request.headers
    span, traceparent = start_span(
        f"{request.method} {kind} callback", trace_parent(headers.get(TRACEPARENT)), _SERVER
    )
    trace.trace_id = trace_id_of(traceparent)
    try:
        record = _record_of(raw, kind, app.auth, publisher.prefix, trace)
        if isinstance(record, web.Response):
            return record
        record.headers.append((TRACEPARENT, traceparent.encode()))
        tracestate = trace_state(headers.get(TRACESTATE))
        if tracestate is not None:
            record.headers.append((TRACESTATE, tracestate))
        limit = oversize(trace.topic or "", record)
        if limit is not None:
            return _error(
                413,
                f"the record of this callback would exceed the {limit} bytes topic "
                f"{trace.topic} accepts (max.message.bytes); send a smaller body",
            )
        outcome = await publisher.publish(record)
    finally:
        if span is not None:
            span.end()
    trace.outcome = outcome.value
    if outcome is Outcome.FULL:
        response = _error(503, "Kafka is unreachable and the spool is full; retry later")
        response.headers["Retry-After"] = "30"
        return response
    return _json(200)


def _refused(
    auth: Auth, prefix: str | None, kind: RouteKind, request: web.BaseRequest
) -> web.Response | None:
    """The answer to a request its route's credential rules refuse before the body is read."""
    if prefix is not None:
        if not auth.insight_key_set:  # a prefix is only ever the Insight key
            return _error(404, "unknown path; see the README for the callback paths")
        if not auth.key_ok(prefix):
            return _error(401, "bad credential")
    elif kind == "feedback":
        if auth.insight_closed:
            return _error(401, "Insight callbacks are refused: this ingress has no Insight key")
        if not auth.key_ok(request.query.get("key")):
            return _error(401, "bad credential: give the Insight key as ?key= or a path prefix")
    if kind != "feedback" and auth.yuju_closed:
        return _error(401, "语聚 callbacks are refused: this ingress has no tenant tokens")
    return None


def _record_of(
    raw: bytes, kind: RouteKind, auth: Auth, prefix: str, trace: _Trace
) -> SpoolRecord | web.Response:
    """The record of an accepted body, or the error response. A function of its own so that
    the parsed body is freed before the request waits for Kafka: hundreds of waiting
    callbacks each holding a parse tree cost CPU per request (a larger working set;
    docs/benchmarks.md, "History", 2026-12-02 A/B)."""
    try:
        body = parse_body(raw)
    except BodyError as exc:
        return _error(400, str(exc))
    token, clean = split_token(body)
    if kind == "feedback":
        tenant = auth.insight_tenant
    else:
        ok, tenant = auth.tenant_for(token)
        if not ok:
            return _error(401, "bad credential: unknown or missing token")
    received_ms = time.time_ns() // 1_000_000
    routed = build_record(kind, clean, tenant=tenant, received=ce_time(received_ms))
    trace.ce_id = routed.ce_id
    trace.topic = routed.topic
    return SpoolRecord(
        topic=prefix + routed.topic,
        key=routed.key,
        value=routed.value,
        headers=routed.headers,
        timestamp_ms=received_ms,
    )


async def _healthz(app: IngressApp, request: web.BaseRequest, trace: _Trace) -> web.StreamResponse:
    return _json(200, {"status": "ok"})


async def _readyz(app: IngressApp, request: web.BaseRequest, trace: _Trace) -> web.StreamResponse:
    """200 while callbacks are accepted (`degraded` while spooling); 503 when they are not.
    `drain`: `idle` (nothing spooled), `draining`, or `stalled` with `drain_error` saying why
    (Kafka, the disk, or a bug; the drainer retries by itself)."""
    publisher = app.publisher
    depth = publisher.backlog
    full = publisher.spool_full() and not publisher.kafka_up
    status = "unavailable" if full else ("ok" if publisher.kafka_up and depth == 0 else "degraded")
    stall = publisher.stall
    drain = "stalled" if stall is not None else ("draining" if depth else "idle")
    return _json(
        503 if full else 200,
        {
            "status": status,
            "kafka": "up" if publisher.kafka_up else "down",
            "spool_depth": depth,
            "spool_bytes": publisher.spool_bytes,
            "drain": drain,
            "drain_error": None if stall is None else f"{stall.reason}: {stall.detail}",
        },
    )


async def _metrics(app: IngressApp, request: web.BaseRequest, trace: _Trace) -> web.StreamResponse:
    return web.Response(
        body=app.metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def _observed(app: IngressApp, handler: TracedHandler, ops_route: str | None = None) -> Handler:
    """`handler` with one JSON access line and the metrics per request: route, status,
    latency, ce_id; never the body, the token or the query string (it may hold the Insight
    key). Ops routes (`ops_route` given) are counted but not logged."""
    metrics = app.metrics
    access = app.access

    async def observed(request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        trace = _Trace(route=ops_route or "unknown")
        try:
            response = await handler(app, request, trace)
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away or the server is stopping (nginx's code)
            raise
        else:
            status = response.status
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = trace.route
            metrics.observe_request(route, status, elapsed)
            if ops_route is None:
                access.request(
                    route=route,
                    method=request.method,
                    status=status,
                    latency_ms=round(elapsed * 1000, 2),
                    ce_id=trace.ce_id,
                    trace_id=trace.trace_id,
                    topic=trace.topic,
                    outcome=trace.outcome,
                )

    return observed


_OPS: dict[str, tuple[str, TracedHandler]] = {
    "/healthz": ("healthz", _healthz),
    "/readyz": ("readyz", _readyz),
    "/metrics": ("metrics", _metrics),
}


class IngressApp:
    """The ingress of worker `worker_index` of `workers` (spool `spool_dir/worker-<i>`): the
    GET probes `/healthz`, `/readyz`, `/metrics`; everything else is a callback path."""

    def __init__(
        self, settings: IngressSettings, *, bootstrap: str, worker_index: int = 0, workers: int = 1
    ) -> None:
        logging.getLogger("aiohttp.server").addFilter(CLIENT_ERRORS)  # idempotent: same object
        self.settings = settings
        self.bootstrap = bootstrap
        self.worker_index = worker_index
        self.workers = workers
        self.metrics = IngressMetrics()
        self.access = AccessLog(settings.log_level, settings.log_format)
        insight_key = settings.insight_key.get_secret_value() if settings.insight_key else None
        self.auth = Auth(
            settings.tenant_tokens(),
            insight_key,
            settings.insight_tenant,
            open_mode=settings.auth == "open",
        )
        self._publisher: Publisher | None = None
        self._ops = {path: _observed(self, h, route) for path, (route, h) in _OPS.items()}
        self._callback = _observed(self, _callback)

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("the ingress is not started")
        return self._publisher

    async def start(self) -> None:
        """Open this worker's spool (and those it adopts), start the producer and drainer."""
        settings = self.settings
        own_dir, adopted_dirs = worker_spools(settings.spool_dir, self.worker_index, self.workers)
        own = Spool(own_dir, settings.spool_max_bytes).open()
        adopted: list[Spool] = []
        for path in adopted_dirs:
            try:
                adopted.append(Spool(path, settings.spool_max_bytes).open())
            except SpoolLockedError:
                log.warning("spool_in_use_elsewhere", spool=str(path))
        publisher = Publisher(
            bootstrap=self.bootstrap,
            spool=own,
            adopted=adopted,
            produce_timeout_s=settings.produce_timeout_s,
            topic_prefix=settings.topic_prefix,
            replication_factor=settings.replication_factor,
            metrics=self.metrics,
        )
        self._publisher = publisher
        await publisher.start()
        log.info(
            "ingress_worker_started",
            spool=str(own_dir),
            spool_depth=publisher.backlog,
            adopted=[str(s.directory) for s in adopted],
        )

    async def stop(self) -> None:
        """Flush the producer and close the spools (after the server stopped taking requests)."""
        if self._publisher is not None:
            await self._publisher.stop()
        self.access.flush()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request: a GET probe by its exact path, else a callback path."""
        if request.method == "GET":
            probe = self._ops.get(request.path)
            if probe is not None:
                return await probe(request)
        return await self._callback(request)

    def request_factory(
        self,
        message: Any,
        payload: Any,
        protocol: Any,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """aiohttp's `BaseRequest`, with our body limit (`read()` raises 413 beyond it)."""
        loop = asyncio.get_running_loop()
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            loop,
            client_max_size=self.settings.max_body_bytes,
        )

    def server(self, **kwargs: Any) -> web.Server:
        """The low-level server of `handle` (in the running loop); `kwargs` go to aiohttp's
        `RequestHandler` (e.g. `access_log=None`)."""
        return web.Server(self.handle, request_factory=self.request_factory, **kwargs)
