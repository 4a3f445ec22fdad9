"""Where an accepted callback goes: straight to Kafka, or to the disk spool, never lost.

Rules (docs/design.md, "Ack or spool: the produce path"):
- Spool empty and Kafka up: produce (idempotent, `acks=all`; batched with concurrent requests
  by `_direct.py`) and wait at most
  `produce_timeout_s`. Acknowledged → `KAFKA`. Failed or late → the record is appended to the
  spool and fsync'd → `SPOOL`; Kafka is marked down.
- Spool not empty, or Kafka down: append behind the backlog (per-key order holds) → `SPOOL`.
- Spool full: one direct produce attempt; if that fails too → `FULL` (the caller answers 503).

The drainer (one task per worker) publishes adopted spools first, then its own, in arrival
order, and commits the spool position after Kafka acknowledged each batch. A late direct
produce whose record was spooled is remembered: the drainer waits for its outcome and skips
the spooled copy when it was delivered, so within one process lifetime nothing is published
twice. After a crash, the batch in flight (and late produces) may be published again, with
the same `ce_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from ingress._direct import DirectProducer
from ingress._metrics import IngressMetrics
from ingress.spool import Position, Spool, SpoolFullError, SpoolRecord
from runtime.errors import ConfigError
from runtime.kafka import producer_config
from runtime.logs import get_logger
from runtime.retry import full_jitter_s
from runtime.topics import ensure_topics
from schemas.registry import REGISTRY

__all__ = ["Outcome", "Publisher"]

log = get_logger(__name__)

_INGRESS_TOPICS = [spec for spec in REGISTRY if spec.writer == "ingress"]
_DRAIN_BATCH = 500
_STOP_TIMEOUT_S = 5.0
_REJECTED = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)
"""Errors about one record that no retry fixes: the drainer quarantines it and moves on."""


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
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._late: dict[tuple[int, Position], asyncio.Future[Any]] = {}
        self._delivered: set[tuple[int, Position]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._update_gauges()
        self._tasks = [
            asyncio.create_task(self._connect(), name="ingress-connect"),
            asyncio.create_task(self._drain_loop(), name="ingress-drain"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._direct is not None:
            await self._direct.stop()
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), _STOP_TIMEOUT_S)
            except (TimeoutError, KafkaError):
                log.warning("producer_stop_incomplete", note="unacknowledged records are spooled")
        for late in self._late.values():
            late.cancel()
        for spool in (self.spool, *self.adopted):
            spool.close()

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
            self._ready.set()
            self._wake.set()
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

    def spool_full(self) -> bool:
        return self.spool.full

    def _set_up(self, up: bool) -> None:
        self.kafka_up = up
        self.metrics.kafka_up.set(1 if up else 0)

    def _update_gauges(self) -> None:
        self.metrics.spool_depth.set(self.backlog)
        self.metrics.spool_bytes.set(self.spool_bytes)

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

    async def publish(self, record: SpoolRecord) -> Outcome:
        """Store one record durably; see the module docstring for the rules."""
        late: asyncio.Future[Any] | None = None
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
            return Outcome.FULL
        if late is not None:
            self._late[(id(self.spool), position)] = late
        self.metrics.outcomes.labels("spool").inc()
        self._update_gauges()
        self._wake.set()
        return Outcome.SPOOL

    # ------------------------------------------------------------------ the drainer
    def _next_spool(self) -> Spool | None:
        for spool in (*self.adopted, self.spool):
            if spool.pending:
                return spool
        return None

    async def _drain_loop(self) -> None:
        failures = 0
        while True:
            spool = self._next_spool()
            if spool is None:
                self._wake.clear()
                self._update_gauges()
                if self.spool.backlog == 0:
                    self._retire_adopted()
                await self._wake.wait()
                continue
            await self._ready.wait()
            try:
                await self._drain_batch(spool)
            except KafkaError as exc:
                self.metrics.kafka_errors.labels(type(exc).__name__).inc()
                failures += 1
                backoff = full_jitter_s(failures, initial_s=0.2, max_s=5.0)
                log.warning(
                    "spool_drain_retry", error=type(exc).__name__, retry_in_s=round(backoff, 2)
                )
                spool.rewind()
                await asyncio.sleep(backoff)
                continue
            failures = 0
            self._update_gauges()
            if self.backlog == 0:
                self._set_up(True)
                log.info("spool_drained")

    async def _drain_batch(self, spool: Spool) -> None:
        batch = spool.read_batch(_DRAIN_BATCH)
        if not batch:
            spool.rewind()
            await asyncio.sleep(0.01)
            return
        sid = id(spool)
        sends: list[tuple[SpoolRecord, Position, asyncio.Future[Any] | BaseException | None]] = []
        for record, position in batch:
            if (sid, position) in self._delivered:
                sends.append((record, position, None))
                continue
            late = self._late.pop((sid, position), None)
            if late is not None:
                await asyncio.wait({late})
                if not late.cancelled() and late.exception() is None:
                    sends.append((record, position, None))  # the late produce made it
                    continue
            try:
                future = await self._producer.send(
                    record.topic,
                    record.value,
                    key=record.key,
                    headers=record.headers,
                    timestamp_ms=record.timestamp_ms,
                )
            except _REJECTED as exc:
                sends.append((record, position, exc))
                continue
            sends.append((record, position, future))
        futures = [f for *_, f in sends if isinstance(f, asyncio.Future)]
        if futures:
            await asyncio.wait(futures)
        committed = 0
        first_error: BaseException | None = None
        for index, (record, position, outcome) in enumerate(sends):
            error = outcome.exception() if isinstance(outcome, asyncio.Future) else outcome
            if isinstance(error, _REJECTED):
                self._reject(spool, record, error)
                error = None
            if error is None and first_error is None:
                committed = index + 1
            elif error is None:
                self._delivered.add((sid, position))
            elif first_error is None:
                first_error = error
        if committed:
            last = sends[committed - 1][1]
            spool.commit(last, committed)
            self._delivered = {d for d in self._delivered if d[0] != sid or d[1] > last}
            self.metrics.drained.inc(committed)
        if first_error is not None:
            raise first_error
        self._set_up(True)

    def _reject(self, spool: Spool, record: SpoolRecord, error: BaseException) -> None:
        """Kafka refuses this record for good (too large, say): keep it aside, move on."""
        spool.quarantine(record)
        self.metrics.kafka_errors.labels("rejected").inc()
        log.error(
            "record_rejected_by_kafka",
            error=type(error).__name__,
            ce_id=record.header("ce_id"),
            topic=record.topic,
            kept_in=str(spool.directory / "rejected.log"),
        )

    def _retire_adopted(self) -> None:
        for spool in list(self.adopted):
            if spool.pending == 0 and spool.remove_if_empty():
                self.adopted.remove(spool)
                log.info("adopted_spool_drained", spool=str(spool.directory))


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log "exception never retrieved"
