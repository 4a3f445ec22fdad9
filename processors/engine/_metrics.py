"""Prometheus metrics of one processor process and its `/healthz` + `/metrics` HTTP server.
Private to the engine. Metric names are listed in docs/operations.md
("Endpoints, logs and metrics")."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator, Sequence
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
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["EngineMetrics", "EventAge", "Health", "MetricsServer"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


_AGE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)


class EventAge(Collector):
    """`wecom_stream_processor_event_age_seconds{processor, topic}`: for each committed
    output record, commit time − the timestamp of the input record it came from (for a raw
    record: when the ingress produced it, so this is the ingress-to-output latency a
    consumer sees, plus the time the record waited before it was read).

    A histogram fed in bulk at each commit: one bisect per output record instead of a
    `Histogram.observe` (a lock and a bucket scan) on the per-record path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._bounds_ms = [round(b * 1000) for b in _AGE_BUCKETS_S]
        self._series: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self._lock = threading.Lock()  # collect() runs in the metrics request's thread
        registry.register(self)

    def observe(self, processor: str, topic: str, now_ms: int, stamps: Sequence[int]) -> None:
        counts, total = self._series.setdefault(
            (processor, topic), ([0] * (len(self._bounds_ms) + 1), [0])
        )
        bounds = self._bounds_ms
        position = bisect.bisect_left
        age_sum = 0
        with self._lock:
            for stamp in stamps:
                age = now_ms - stamp
                counts[position(bounds, age)] += 1
                age_sum += age
            total[0] += age_sum

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "wecom_stream_processor_event_age_seconds",
            "Age of each output record at its commit: commit time - its input record's timestamp",
            labels=["processor", "topic"],
        )
        with self._lock:
            series = [(key, list(c), t[0]) for key, (c, t) in self._series.items()]
        for (processor, topic), counts, total_ms in series:
            cumulative, buckets = 0, []
            for bound, n in zip([*_AGE_BUCKETS_S, float("inf")], counts, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(float(bound))  # as Histogram
                buckets.append((le, cumulative))
            family.add_metric([processor, topic], buckets, total_ms / 1000)
        yield family


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
        self.ahead_of_clock = Counter(
            p + "records_ahead_of_clock",
            "Input records timestamped beyond the clock-skew horizon (not moving stream time)",
            [*labels, "topic"],
            registry=reg,
        )
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
        self.store_rebuilds = Counter(
            p + "store_rebuilds",
            "Local stores the changelog did not confirm, rebuilt from its beginning",
            [*labels, "store", "reason"],
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
        self.event_age = EventAge(reg)
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
        addresses = self._runner.addresses  # public: the bound (host, port, ...) tuples
        if addresses:
            self.port = int(addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
