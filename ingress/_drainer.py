"""The spool drainer of one worker: publishes adopted spools first, then its own, in arrival
order, and commits each spool's position after Kafka acknowledged a batch.

Supervised: any exception of a pass (Kafka, the disk, a bug) is logged, counted
(`wecom_ingress_spool_drain_errors_total{kind}`), shown (`/readyz` `drain`, `drain_error`;
`wecom_ingress_spool_stalled{reason}`), backed off (`runtime.retry.full_jitter_s`) and
retried; the drainer never ends before the worker does. Kafka and disk failures are warnings
(they pass by themselves once Kafka or space returns); an unexpected exception is an error
with its traceback (a bug: an operator must act).

Exactly once within a process lifetime: a late direct produce whose record was also spooled
is awaited and its spooled copy skipped when it was delivered; records of a failed batch
that were delivered after the failing one are remembered and not sent again; a position
that cannot be written (a full disk) does not make the drainer send its batch again.
Records Kafka refuses for good are kept aside (`Spool.set_aside_rejected`), once, and only
within the prefix of a batch that is committed.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.errors import (
    CorruptRecordException,
    InvalidProducerEpoch,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownProducerId,
)

from ingress._metrics import IngressMetrics
from ingress.spool import Entry, Position, Spool
from runtime.logs import get_logger
from runtime.memory import release_memory_soon
from runtime.retry import full_jitter_s

__all__ = ["PRODUCER_STATE_LOST", "STALL_REASONS", "Drainer", "Stall"]

log = get_logger("ingress.publisher")

_REJECTED = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)
"""Errors about one record that no retry fixes: the drainer keeps it aside and moves on."""

PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)
"""The broker no longer accepts this producer's sequence numbers: no retry by the same
producer fixes it, a new producer (a new producer id) does.

aiokafka 0.14 consumes a partition's sequence numbers when it takes a batch off its queue,
also for a batch it then fails unsent (one that expired while its partition had no leader:
`MessageAccumulator.drain_by_nodes`), and never resets them (the Java client bumps its epoch:
KIP-360). Every later batch to that partition is then refused with OutOfOrderSequenceNumber,
for good: https://github.com/aio-libs/aiokafka/issues/1017 . Seen here after a broker
restart under load (docs/faults.md, finding 8): the spool stopped draining until the
process restarted. The drainer is the one place that sees it (a callback whose direct
produce fails is spooled), and renews the producer (`Publisher.renew_producer`)."""

StallReason = Literal["kafka", "disk", "unexpected"]
STALL_REASONS: tuple[StallReason, ...] = ("kafka", "disk", "unexpected")


@dataclass(frozen=True, slots=True)
class Stall:
    """Why the spool is not draining: `reason` (a metric label) and `detail` (for /readyz
    and the log: an error type and errno, never record content)."""

    reason: StallReason
    detail: str


def _stall_of(exc: BaseException) -> Stall:
    if isinstance(exc, KafkaError):
        return Stall("kafka", type(exc).__name__)
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno or 0, "")
        return Stall("disk", f"{type(exc).__name__} {code}: {exc.strerror or exc}".strip())
    return Stall("unexpected", type(exc).__name__)


class Drainer:
    """Drains `own` and `adopted` (removing adopted spools once empty) through `producer`
    (set once Kafka is connected); `set_up(bool)` reports whether Kafka answers."""

    def __init__(
        self,
        own: Spool,
        adopted: list[Spool],
        metrics: IngressMetrics,
        set_up: Callable[[bool], None],
        update_gauges: Callable[[], None],
        renew_producer: Callable[[BaseException], Awaitable[None]],
        batch_records: int = 500,
    ) -> None:
        self.own = own
        self.adopted = adopted
        self.metrics = metrics
        self.producer: Any = None
        self.ready = asyncio.Event()
        self.wake = asyncio.Event()
        self.emptied = asyncio.Event()
        """Set when a drain round trip left every spool empty; cleared by the next append."""
        self.stall: Stall | None = None
        self._set_up = set_up
        self._update_gauges = update_gauges
        self._renew_producer = renew_producer
        self.batch_records = batch_records
        self._late: dict[tuple[int, Position], asyncio.Future[Any]] = {}
        self._delivered: set[tuple[int, Position]] = set()
        self._show(None)

    def remember_late(self, spool: Spool, position: Position, late: asyncio.Future[Any]) -> None:
        """A direct produce still in flight whose record was spooled ending at `position`."""
        self._late[(id(spool), position)] = late

    def cancel_late(self) -> None:
        for late in self._late.values():
            late.cancel()

    def _next_spool(self) -> Spool | None:
        for spool in (*self.adopted, self.own):
            if spool.pending or spool.unpersisted:
                return spool
        return None

    def _show(self, stall: Stall | None) -> None:
        self.stall = stall
        for reason in STALL_REASONS:
            self.metrics.spool_stalled.labels(reason).set(
                1 if stall is not None and stall.reason == reason else 0
            )

    async def run(self) -> None:
        failures = 0
        while True:
            spool = self._next_spool()
            if spool is None:
                self.wake.clear()
                self._show(None)
                self._update_gauges()
                if self.own.backlog == 0:
                    self._retire_adopted()
                await self.wake.wait()
                continue
            if not self.ready.is_set():
                self._show(Stall("kafka", "not connected"))
                await self.ready.wait()
            try:
                if spool.pending:
                    await self._drain_batch(spool)
                else:
                    await spool.persist()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - supervised: every failure is retried
                failures += 1
                await self._failed(spool, exc, failures)
                continue
            failures = 0
            self._show(None)
            self._update_gauges()
            if self.own.backlog == 0 and not any(s.pending for s in self.adopted):
                self._set_up(True)
                self.emptied.set()
                log.info("spool_drained")
                release_memory_soon()  # what the outage allocated

    async def _failed(self, spool: Spool, exc: Exception, failures: int) -> None:
        stall = _stall_of(exc)
        self._show(stall)
        self.metrics.drain_errors.labels(stall.reason).inc()
        if stall.reason == "kafka":
            self.metrics.kafka_errors.labels(type(exc).__name__).inc()
        ceiling = 5.0 if stall.reason == "kafka" else 30.0
        backoff = full_jitter_s(failures, initial_s=0.2, max_s=ceiling)
        fields = {"reason": stall.reason, "error": stall.detail, "retry_in_s": round(backoff, 2)}
        if stall.reason == "unexpected":
            log.error("spool_drain_failed", spool=str(spool.directory), exc_info=exc, **fields)
        else:
            log.warning("spool_drain_retry", spool=str(spool.directory), **fields)
        spool.rewind()
        self._update_gauges()
        if isinstance(exc, PRODUCER_STATE_LOST):
            await self._renew_producer(exc)
        await asyncio.sleep(backoff)

    async def _drain_batch(self, spool: Spool) -> None:
        batch = spool.read_batch(self.batch_records)
        if not batch:  # only damage was left, now kept aside: move past it
            if spool.pending:
                raise RuntimeError(f"{spool.pending} pending records but none readable")
            await spool.commit(spool.read_position, 0)
            return
        sid = id(spool)
        sends = await self._send(spool, batch)
        futures = [f for _, f in sends if isinstance(f, asyncio.Future)]
        if futures:
            await asyncio.wait(futures)
        committed = 0
        first_error: BaseException | None = None
        for index, (entry, outcome) in enumerate(sends):
            error = _error_of(outcome)
            if first_error is not None:  # retried with the batch; only remember deliveries
                if error is None:
                    self._delivered.add((sid, entry.end))
                continue
            if isinstance(error, _REJECTED):
                self._reject(spool, entry, error)
                error = None
            if error is None:
                committed = index + 1
            else:
                first_error = error
        if committed:
            last = sends[committed - 1][0].end
            self._delivered = {d for d in self._delivered if d[0] != sid or d[1] > last}
            self.metrics.drained.inc(committed)
            await spool.commit(last, committed)  # OSError: not written, but not sent again either
        if first_error is not None:
            raise first_error
        self._set_up(True)

    async def _send(
        self, spool: Spool, batch: list[Entry]
    ) -> list[tuple[Entry, asyncio.Future[Any] | BaseException | None]]:
        """Hand the batch to the producer: per entry its delivery future, None when it is on
        Kafka already, or the error that stopped it. A send that fails stops the batch."""
        sid = id(spool)
        sends: list[tuple[Entry, asyncio.Future[Any] | BaseException | None]] = []
        for entry in batch:
            if (sid, entry.end) in self._delivered:
                sends.append((entry, None))
                continue
            late = self._late.pop((sid, entry.end), None)
            if late is not None:
                await asyncio.wait({late})
                if _error_of(late) is None:
                    sends.append((entry, None))  # the late produce made it
                    continue
            record = entry.record
            try:
                future = await self.producer.send(
                    record.topic,
                    record.value,
                    key=record.key,
                    headers=record.headers,
                    timestamp_ms=record.timestamp_ms,
                )
            except _REJECTED as exc:
                sends.append((entry, exc))
                continue
            except KafkaError as exc:
                sends.append((entry, exc))
                break
            sends.append((entry, future))
        return sends

    def _reject(self, spool: Spool, entry: Entry, error: BaseException) -> None:
        """Kafka refuses this record for good (too large, say): keep it aside, move on."""
        kept = spool.set_aside_rejected(entry)
        self.metrics.kafka_errors.labels("rejected").inc()
        log.error(
            "record_rejected_by_kafka",
            error=type(error).__name__,
            ce_id=entry.record.header("ce_id"),
            topic=entry.record.topic,
            kept_in=str(kept),
        )

    def _retire_adopted(self) -> None:
        for spool in list(self.adopted):
            if spool.pending == 0 and spool.remove_if_empty():
                self.adopted.remove(spool)
                log.info("adopted_spool_drained", spool=str(spool.directory))


def _error_of(outcome: asyncio.Future[Any] | BaseException | None) -> BaseException | None:
    if not isinstance(outcome, asyncio.Future):
        return outcome
    error: BaseException | None = (
        KafkaError("the send was cancelled") if outcome.cancelled() else outcome.exception()
    )
    return error
