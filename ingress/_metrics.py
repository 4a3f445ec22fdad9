"""The ingress's Prometheus metrics, in a registry per app.

With `--workers N > 1`, `serve` sets `PROMETHEUS_MULTIPROC_DIR` before the workers start, so
`/metrics` on any worker reports the sum over all workers (prometheus_client's multiprocess
mode; the spool gauges are summed over live workers).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["IngressMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class IngressMetrics:
    """Requests by route and status, request and produce latency, spool depth/bytes, errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "wecom_ingress_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "wecom_ingress_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.produce_latency = Histogram(
            "wecom_ingress_produce_seconds",
            "Time until Kafka acknowledged a direct produce",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.outcomes = Counter(
            "wecom_ingress_records",
            "Records accepted, by where they went (kafka or spool)",
            ["outcome"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "wecom_ingress_kafka_errors",
            "Produce failures and deadline misses by kind",
            ["kind"],
            registry=r,
        )
        self.drained = Counter(
            "wecom_ingress_spool_drained",
            "Spooled records published by the drainer",
            registry=r,
        )
        self.spool_depth = Gauge(
            "wecom_ingress_spool_depth",
            "Records in the spool not yet on Kafka",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "wecom_ingress_spool_bytes",
            "Bytes in the spool not yet on Kafka",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.spool_disk_bytes = Gauge(
            "wecom_ingress_spool_disk_bytes",
            "Bytes the spool owns on its volume (segments and kept-aside files): what "
            "WECOM_STREAM_SPOOL_MAX_BYTES caps",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.spool_kept_aside_bytes = Gauge(
            "wecom_ingress_spool_kept_aside_bytes",
            "Bytes of damaged frames and Kafka-rejected records kept aside in the spool "
            "directory for the operator",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.drain_errors = Counter(
            "wecom_ingress_spool_drain_errors",
            "Failed drainer passes by reason (kafka, disk, unexpected); each is retried",
            ["reason"],
            registry=r,
        )
        self.producer_renewals = Counter(
            "wecom_ingress_producer_renewals",
            "Producers replaced because the broker refused their sequence numbers "
            "(OutOfOrderSequenceNumber and kin: aiokafka issue 1017)",
            registry=r,
        )
        self.spool_stalled = Gauge(
            "wecom_ingress_spool_stalled",
            "1 while the drainer's last pass failed, labelled with the reason",
            ["reason"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.kafka_up = Gauge(
            "wecom_ingress_kafka_up",
            "1 while the last produce succeeded",
            multiprocess_mode="livemin",
            registry=r,
        )

        self.to_kafka = self.outcomes.labels("kafka")  # per request: the child, cached
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency (label children cached: this is per request)."""
        children = self._children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The exposition text (all workers' sum in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(merged)
        return generate_latest(self.registry)
