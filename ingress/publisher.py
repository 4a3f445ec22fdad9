"""Where an accepted callback goes: straight to Kafka, or to the disk spool, never lost.

Rules (docs/design.md, "Ack or spool: the produce path"):
- Spool empty and Kafka up: produce (idempotent, `acks=all`; batched with concurrent requests
  by `_direct.py`) and wait at most
  `produce_timeout_s`. Acknowledged → `KAFKA`. Failed or late → the record is appended to the
  spool and fsync'd → `SPOOL`; Kafka is marked down.
- Spool not empty, or Kafka down: append behind the backlog (per-key order holds) → `SPOOL`.
  Handover: while Kafka is up and the backlog is within one drain batch, a callback first
  waits up to `_HANDOVER_WAIT_S` for the drainer to empty the spool and then produces
  directly. Without the wait a steady load never lets a callback find the spool empty (one
  arrives during every drain round trip) and the ingress stays in spool mode for as long as
  the load lasts (docs/faults.md, finding 1; `tests/faults/test_spool_handover.py`).
- Spool full: one direct produce attempt; if that fails too → `FULL` (the caller answers 503).

The drainer (`_drainer.py`, one supervised task per worker) publishes the spools in
arrival order once Kafka answers. A spool that refuses a record (its cap, or its disk full
or failing) makes the callback try Kafka directly once more, then `FULL` (503). A producer
whose sequence numbers the broker refuses for good (aiokafka issue 1017) is replaced by a
new one (`renew_producer`, called by the drainer: `_drainer.PRODUCER_STATE_LOST`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingress._direct import DirectProducer
from ingress._drainer import Drainer, Stall
from ingress._metrics import IngressMetrics
from ingress.spool import Spool, SpoolFullError, SpoolRecord
from runtime.errors import ConfigError
from runtime.kafka import producer_config
from runtime.logs import get_logger
from runtime.retry import full_jitter_s
from runtime.topics import ensure_topics
from schemas.registry import REGISTRY

__all__ = ["Outcome", "Publisher"]

log = get_logger(__name__)

_INGRESS_TOPICS = [spec for spec in REGISTRY if spec.writer == "ingress"]
_STOP_TIMEOUT_S = 5.0
_HANDOVER_WAIT_S = 0.5
"""The longest a callback waits for the drainer to empty the spool (module docstring): a
drain round trip of a batch on a healthy cluster, and far inside the platforms' 5 s."""


class Outcome(enum.Enum):
    KAFKA = "kafka"
    SPOOL = "spool"
    FULL = "full"


class Publisher:
    """The producer, this worker's spool (plus adopted ones) and the drainer."""

    def __init__(
        self,
        *,
        bootstrap: str,
        spool: Spool,
        adopted: list[Spool],
        produce_timeout_s: float,
        topic_prefix: str,
        replication_factor: int,
        metrics: IngressMetrics,
        drain_batch_records: int = 500,
    ) -> None:
        self.bootstrap = bootstrap
        self.spool = spool
        self.adopted = adopted
        self.timeout = produce_timeout_s
        self.prefix = topic_prefix
        self.replication_factor = replication_factor
        self.metrics = metrics
        self.kafka_up = False
        self._producer: Any = None
        self._direct: DirectProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.drainer = Drainer(
            spool,
            adopted,
            metrics,
            self._set_up,
            self._update_gauges,
            self.renew_producer,
            drain_batch_records,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._update_gauges()
        self._tasks = [
            asyncio.create_task(self._connect(), name="ingress-connect"),
            asyncio.create_task(self.drainer.run(), name="ingress-drain"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_producer()
        self.drainer.cancel_late()
        for spool in (self.spool, *self.adopted):
            spool.close()

    async def _stop_producer(self) -> None:
        direct, producer = self._direct, self._producer
        self._direct = self._producer = None
        if direct is not None:
            await direct.stop()
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), _STOP_TIMEOUT_S)
            except (TimeoutError, KafkaError):
                log.warning("producer_stop_incomplete", note="unacknowledged records are spooled")

    async def renew_producer(self, error: BaseException) -> None:
        """Replace a producer whose sequence numbers the broker refuses
        (`_drainer.PRODUCER_STATE_LOST`, aiokafka's issue 1017) by a new one. Meanwhile
        callbacks are spooled; direct produces still in flight on the old producer end with
        it (their spooled copies are sent by the new one, once)."""
        self._set_up(False)
        self.drainer.ready.clear()
        await self._stop_producer()
        self.drainer.cancel_late()
        self.metrics.producer_renewals.inc()
        log.warning("producer_renewed", error=type(error).__name__, issue="aiokafka#1017")
        self._tasks.append(asyncio.create_task(self._connect(), name="ingress-reconnect"))

    async def _connect(self) -> None:
        """Start the producer, retrying while Kafka is unreachable (the spool takes over)."""
        failures = 0
        while True:
            # linger 0: a callback waits for its ack, so lingering only adds latency; records
            # still batch by themselves while a produce request is in flight.
            producer = AIOKafkaProducer(**producer_config(self.bootstrap, linger_ms=0))
            try:
                await producer.start()
                await self._ensure_topics()
                for spec in _INGRESS_TOPICS:
                    await producer.partitions_for(self.prefix + spec.name)
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
                failures += 1
                backoff = full_jitter_s(failures, initial_s=0.5, max_s=10.0)
                log.warning(
                    "kafka_unreachable", error=type(exc).__name__, retry_in_s=round(backoff, 2)
                )
                await asyncio.sleep(backoff)
                continue
            self._producer = producer
            self._direct = DirectProducer(producer, self.timeout)
            self._direct.start()
            self._set_up(True)
            self.drainer.producer = producer
            self.drainer.ready.set()
            self.drainer.wake.set()
            log.info("kafka_connected", bootstrap=self.bootstrap)
            return

    async def _ensure_topics(self) -> None:
        """Create or fix the ingress topics; a misconfiguration is logged, not fatal: the
        ingress keeps answering and spooling, so no callback is lost meanwhile."""
        try:
            report = await ensure_topics(
                self.bootstrap, _INGRESS_TOPICS, self.prefix, self.replication_factor
            )
        except (KafkaError, OSError):
            return
        except ConfigError as exc:
            log.error("topics_misconfigured", error=str(exc))  # noqa: TRY400 - no traceback
            return
        report.log(log)

    # ------------------------------------------------------------------ state
    @property
    def backlog(self) -> int:
        """Records waiting in the spools (asked per request: no generator when none is
        adopted, the usual case)."""
        adopted = self.adopted
        return self.spool.backlog + (sum(s.pending for s in adopted) if adopted else 0)

    @property
    def spool_bytes(self) -> int:
        return self.spool.bytes + sum(s.bytes for s in self.adopted)

    @property
    def stall(self) -> Stall | None:
        """Why the spools are not draining, or None."""
        return self.drainer.stall

    def spool_full(self) -> bool:
        return self.spool.full

    def _set_up(self, up: bool) -> None:
        self.kafka_up = up
        self.metrics.kafka_up.set(1 if up else 0)

    def _update_gauges(self) -> None:
        spools = (self.spool, *self.adopted)
        self.metrics.spool_depth.set(self.backlog)
        self.metrics.spool_bytes.set(self.spool_bytes)
        self.metrics.spool_disk_bytes.set(sum(s.disk_bytes for s in spools))
        self.metrics.spool_kept_aside_bytes.set(sum(s.kept_aside_bytes for s in spools))

    # ------------------------------------------------------------------ the request path
    async def _try_direct(self, record: SpoolRecord) -> asyncio.Future[Any] | None:
        """Produce within the deadline (batched with concurrent requests, `_direct.py`). None
        when acknowledged; else the delivery future, still pending (it may succeed later) or
        failed."""
        assert self._direct is not None  # callers check
        started = time.monotonic()
        future = await self._direct.produce(record)
        if future is None:
            self.metrics.produce_latency.observe(time.monotonic() - started)
            return None
        if future.done():
            error = None if future.cancelled() else future.exception()
            kind = "deadline" if isinstance(error, TimeoutError) else type(error).__name__
            self.metrics.kafka_errors.labels(kind).inc()
        else:
            self.metrics.kafka_errors.labels("deadline").inc()
            future.add_done_callback(_consume_exception)
        if self.kafka_up:
            log.warning("kafka_degraded", reason="produce failed or missed the deadline")
        self._set_up(False)
        return future

    async def _await_handover(self) -> None:
        """Wait (at most `_HANDOVER_WAIT_S`) for the drainer to empty a backlog of at most
        one drain batch, so that this callback can be produced directly."""
        if self.backlog > self.drainer.batch_records:
            return
        self.drainer.emptied.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drainer.emptied.wait(), _HANDOVER_WAIT_S)

    async def publish(self, record: SpoolRecord) -> Outcome:
        """Store one record durably; see the module docstring for the rules."""
        late: asyncio.Future[Any] | None = None
        if self.kafka_up and self._direct is not None and self.backlog > 0:
            await self._await_handover()
        if self.backlog == 0 and self.kafka_up and self._direct is not None:
            late = await self._try_direct(record)
            if late is None:
                self.metrics.to_kafka.inc()
                return Outcome.KAFKA
            if late.done():
                late = None  # failed for sure: the spooled copy is the only one
        try:
            position = await self.spool.append(record)
        except SpoolFullError:
            if (
                late is None
                and self._direct is not None
                and (await self._try_direct(record)) is None
            ):
                self.metrics.to_kafka.inc()
                return Outcome.KAFKA
            self.metrics.outcomes.labels("full").inc()
            self._update_gauges()
            return Outcome.FULL
        self.drainer.emptied.clear()
        if late is not None:
            self.drainer.remember_late(self.spool, position, late)
        self.metrics.outcomes.labels("spool").inc()
        self._update_gauges()
        self.drainer.wake.set()
        return Outcome.SPOOL


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log "exception never retrieved"
