"""Prometheus metrics of one processor process and its `/healthz` + `/metrics` HTTP server.
Private to the engine. Metric names are listed in the README ("Operations")."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["EngineMetrics", "Health", "MetricsServer"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class EngineMetrics:
    """Every metric of one processor process, in its own registry."""

    def __init__(self, processor: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["processor"]
        reg = self.registry
        p = "wecom_stream_processor_"
        self.records_in = Counter(
            p + "records_in", "Input records processed", [*labels, "topic"], registry=reg
        )
        self.records_out = Counter(
            p + "records_out", "Output records committed", [*labels, "topic"], registry=reg
        )
        self.dlq = Counter(p + "dlq_records", "Records sent to the DLQ", labels, registry=reg)
        self.commits = Counter(
            p + "commits",
            "Commits (transactions in exactly-once)",
            [*labels, "result"],
            registry=reg,
        )
        self.rebalances = Counter(
            p + "rebalances", "Partition assignments received", labels, registry=reg
        )
        self.member_restarts = Counter(
            p + "member_restarts",
            "Group members restarted after an error",
            labels,
            registry=reg,
        )
        self.batch_seconds = Histogram(
            p + "batch_seconds",
            "Processing latency: fetch of a batch to its commit",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.commit_seconds = Histogram(
            p + "commit_seconds",
            "Duration of one commit",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.restore_seconds = Histogram(
            p + "restore_seconds",
            "State restore duration per assignment",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.restored_records = Counter(
            p + "restored_records",
            "Changelog records replayed into stores",
            labels,
            registry=reg,
        )
        self.lag = Gauge(
            p + "consumer_lag",
            "Records not yet committed (last stable offset - committed)",
            [*labels, "topic", "partition"],
            registry=reg,
        )
        self.tasks = Gauge(p + "tasks", "Tasks (input partitions) processing", labels, registry=reg)
        self.restoring_tasks = Gauge(
            p + "restoring_tasks",
            "Tasks assigned and restoring their stores (paused until caught up)",
            labels,
            registry=reg,
        )
        self.store_entries = Gauge(
            p + "store_entries", "Entries in state stores", [*labels, "store"], registry=reg
        )
        self.processor = processor

    def render(self) -> bytes:
        # Plus prometheus_client's default registry: processor modules register their own
        # metrics there (e.g. wecom_stream_feedback_callbacks_total), and it adds process_*.
        return generate_latest(self.registry) + generate_latest(REGISTRY)


@dataclass
class Health:
    """What `/healthz` reports; the member loop updates it."""

    processor: str
    instance: int = 0
    state: str = "starting"
    last_poll: float = field(default_factory=time.monotonic)
    max_poll_interval_s: float = 300.0
    tasks: list[int] = field(default_factory=list)
    error: str | None = None

    def healthy(self) -> bool:
        fresh = time.monotonic() - self.last_poll < self.max_poll_interval_s
        return self.state in ("starting", "running", "restoring") and fresh

    def body(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy() else "unhealthy",
            "processor": self.processor,
            "instance": self.instance,
            "state": self.state,
            "tasks": sorted(self.tasks),
            "error": self.error,
        }


class MetricsServer:
    """aiohttp server for `/healthz` (200 / 503) and `/metrics` (Prometheus text)."""

    def __init__(self, metrics: EngineMetrics, health: Health, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response(self.health.body(), status=200 if self.health.healthy() else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def start(self) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
