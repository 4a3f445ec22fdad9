"""A task: one input partition number (shared by the co-partitioned inputs) with its stores,
its producer in exactly-once mode, the offsets it has consumed and the sends not yet
committed. Runs the handler over records; a commit (`_commit.py`) takes what the task holds
out of it. Private to the engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import BaseModel

from processors.engine._batches import OutputBatches
from processors.engine._clock import StreamClock
from processors.engine._dlq import describe_error, dlq_headers, fit_dead_letter
from processors.engine._limits import (
    OutputTooLargeError,
    declared_max_message_bytes,
    record_bytes,
    usable_bytes,
)
from processors.engine._metrics import EngineMetrics
from processors.engine._setup import Names
from processors.engine._stores import ChangelogEntry, MemoryStore, TaskStore
from processors.engine.api import InputRecord, OutputRecord, Processor, Store
from runtime import tracing
from runtime.logs import get_logger
from schemas.cloudevents import header_map
from schemas.registry import dlq_topic

__all__ = ["OutputTooLargeError", "RecordCounts", "Task", "UndeclaredOutputError"]

_CLOSE_TIMEOUT_S = 10.0
_log = get_logger(__name__)


class UndeclaredOutputError(ValueError):
    """A handler returned a record for a topic its processor does not declare (a bug)."""


class _Context:
    __slots__ = ("_stores",)

    def __init__(self, stores: dict[str, TaskStore]) -> None:
        self._stores = stores

    def store(self, name: str) -> Store:
        try:
            return self._stores[name]
        except KeyError:
            raise KeyError(f"no store {name!r}; declared: {sorted(self._stores)}") from None


def _value_bytes(value: bytes | BaseModel | None) -> bytes | None:
    if type(value) is bytes:
        return value
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value)
    return value


class RecordCounts(NamedTuple):
    """A task's counters between two commits, counted once the commit succeeded."""

    outputs: dict[str, int]
    """Physical output topic -> records written."""
    inputs: dict[str, int]
    """Physical input topic -> records consumed."""
    ages: dict[str, list[int]]
    """Physical output topic -> the timestamp of each output's input."""


_CONSUMER = tracing.SpanKind.CONSUMER


class Task:
    """One task. `producer` is the task's own transactional producer (exactly-once) or the
    member's shared idempotent producer (at-least-once)."""

    def __init__(
        self,
        partition: int,
        processor: Processor,
        names: Names,
        producer: AIOKafkaProducer,
        metrics: EngineMetrics,
        *,
        transactional: bool,
        max_clock_skew_ms: int,
        stores: dict[str, TaskStore] | None = None,
        max_message_bytes: Mapping[str, int] | None = None,
    ) -> None:
        """`max_message_bytes`: the actual limit of each physical output and DLQ topic, as
        described at start-up (missing ones: the registry's, else Kafka's default)."""
        self.partition = partition
        self.processor = processor
        self.names = names
        self.producer = producer
        self.metrics = metrics
        self.transactional = transactional
        self.stores: dict[str, TaskStore] = (
            stores if stores is not None else {s.name: MemoryStore(s) for s in processor.stores}
        )
        self._context = _Context(self.stores)
        self._outputs = {t: names.topic(t) for t in processor.outputs}
        actual = max_message_bytes or {}
        codec = processor.compression_type
        self._limits = {
            t: usable_bytes(actual.get(names.topic(t)) or declared_max_message_bytes(t), codec)
            for t in (*processor.outputs, dlq_topic(processor.name))
        }
        """Logical topic -> the largest record the engine writes to it (`_limits`)."""
        self._dlq_limit = self._limits[dlq_topic(processor.name)]
        self.clock = StreamClock(max_clock_skew_ms)
        self.offsets: dict[TopicPartition, int] = {}  # next offset per input, to commit
        self.sends: list[asyncio.Future[Any]] = []
        """Output and DLQ sends not awaited yet (`_batches` appends to this list)."""
        self._batches = OutputBatches(
            producer,
            self.sends,
            codec,
            {names.topic(t): limit for t, limit in self._limits.items()},
            transactional=transactional,
        )
        self._out_counts: dict[str, int] = {}
        self._in_counts: dict[str, int] = {}
        self._ages: dict[str, list[int]] = {}  # per output topic: each output's input time
        self.dirty = False  # records consumed since the last commit
        self.in_transaction = False

    # ---------------------------------------------------------------- processing
    async def begin(self) -> None:
        """Open the next transaction (exactly-once); a local state change in aiokafka."""
        if self.transactional and not self.in_transaction:
            await self.producer.begin_transaction()
            self.in_transaction = True

    async def process(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        """Run the handler over consecutive records of one input partition."""
        await self.begin()
        logical = self.names.logical(tp.topic)
        span_name = f"{self.processor.name} process {logical}"
        handle = self.processor.handle
        stores = list(self.stores.values())
        append = self._batches.append
        try_append = self._batches.try_append
        out_counts = self._out_counts
        clock = self.clock
        horizon = clock.horizon()
        ahead = clock.ahead
        for rec in records:
            ts = rec.timestamp
            if ts > clock.time_ms and clock.advance(ts, horizon):
                for store in stores:  # the stores' write time follows the stream time
                    store.now_ms = ts
            headers_in = header_map(rec.headers)
            parent = headers_in.get(tracing.TRACEPARENT)
            span, traceparent = tracing.record_span(span_name, parent, _CONSUMER)
            try:
                inp = InputRecord(
                    logical, tp.partition, rec.offset, rec.key, rec.value, headers_in, ts
                )
                outputs = [self._serialize(out) for out in handle(inp, self._context)]
            except Exception as exc:  # noqa: BLE001 - any handler failure is a poison record
                for store in stores:
                    store.end_record(ok=False)
                await self._dead_letter(tp, rec, exc, traceparent or tracing.continue_trace(parent))
            else:
                for store in stores:
                    store.end_record(ok=True)
                if outputs:
                    traceparent = traceparent or tracing.continue_trace(parent)
                    trace_header = (tracing.TRACEPARENT, traceparent.encode())
                for topic, key, value, headers in outputs:
                    headers.append(trace_header)  # the engine's own copy (`_serialize`)
                    if not try_append(topic, key, value, headers):
                        await append(topic, key, value, headers)
                    out_counts[topic] = out_counts.get(topic, 0) + 1
                    self._ages.setdefault(topic, []).append(ts)
            finally:
                if span is not None:
                    span.end()
        self.offsets[tp] = records[-1].offset + 1
        self._in_counts[tp.topic] = self._in_counts.get(tp.topic, 0) + len(records)
        self.dirty = True
        if clock.ahead > ahead:
            self._ahead_of_clock(logical, tp.partition, clock.ahead - ahead, horizon)

    def _ahead_of_clock(self, topic: str, partition: int, count: int, horizon: int) -> None:
        """Records stamped beyond the clock-skew horizon were processed without moving
        stream time (`_clock.py`): counted, and logged once per batch."""
        self.metrics.ahead_of_clock.labels(self.processor.name, topic).inc(count)
        _log.warning(
            "records_ahead_of_clock",
            topic=topic,
            partition=partition,
            records=count,
            max_clock_skew_ms=self.clock.max_skew_ms,
            horizon_ms=horizon,
            stream_time_ms=self.clock.time_ms,
        )

    async def send_outputs(self) -> None:
        """Hand every open output batch to the producer (after each fetched batch): the
        sends overlap the next records' processing instead of all waiting for the commit."""
        await self._batches.flush()

    def _serialize(self, out: OutputRecord) -> tuple[str, bytes | None, bytes | None, list[Any]]:
        if not isinstance(out, OutputRecord):
            raise TypeError(  # a bare record returned is iterated as its fields
                f"handler of {self.processor.name} must return an iterable of OutputRecord, "
                f"got an item of type {type(out).__name__}"
            )
        logical, key, value, headers = out
        topic = self._outputs.get(logical)
        if topic is None:
            raise UndeclaredOutputError(
                f"handler of {self.processor.name} returned a record for {logical!r}, "
                f"which is not among its declared outputs {list(self._outputs)}"
            )
        if isinstance(key, str):
            key = key.encode()
        if type(value) is not bytes:
            value = _value_bytes(value)
        headers = list(headers)  # a copy: the handler may reuse its list
        size = record_bytes(key, value, headers)
        if size > self._limits[logical]:
            raise OutputTooLargeError(
                f"output record for {logical} is {size} bytes, over the "
                f"{self._limits[logical]} the topic takes"
            )
        return topic, key, value, headers

    async def _dead_letter(
        self, tp: TopicPartition, rec: Any, exc: BaseException, traceparent: str
    ) -> None:
        headers = dlq_headers(
            list(rec.headers or ()),
            exc,
            processor=self.processor.name,
            topic=self.names.logical(tp.topic),
            partition=tp.partition,
            offset=rec.offset,
            traceparent=traceparent,
        )
        key, value, headers = fit_dead_letter(rec.key, rec.value, headers, self._dlq_limit)
        if not self._batches.try_append(self.names.dlq, key, value, headers):
            await self._batches.append(self.names.dlq, key, value, headers)
        self.metrics.dlq.labels(self.processor.name).inc()
        _log.warning(
            "record_dead_lettered",
            topic=self.names.logical(tp.topic),
            partition=tp.partition,
            offset=rec.offset,
            error_type=type(exc).__name__,
            error=describe_error(exc),
            trace_id=tracing.trace_id_of(traceparent),
        )

    # ---------------------------------------------------------------- what a commit takes
    @property
    def stream_time(self) -> int:
        return self.clock.time_ms

    def expire(self) -> None:
        for store in self.stores.values():
            store.expire(self.clock.time_ms)

    def changelog_entries(self) -> list[tuple[TaskStore, list[ChangelogEntry]]]:
        """(store, its entries) of every store with dirty keys, latest values only; the
        stores' dirty sets are cleared."""
        return [
            (store, store.changelog_batch()) for store in self.stores.values() if store.has_dirty
        ]

    def take_sends(self) -> list[asyncio.Future[Any]]:
        """The sends not awaited yet, taken out of the task (`sends` emptied in place)."""
        sends = self.sends[:]
        self.sends.clear()  # in place: `_batches` appends to this list
        return sends

    def take_counts(self) -> RecordCounts:
        """The counters since the last commit, taken out (the task counts afresh); the
        task holds no record since (`dirty` False)."""
        counts = RecordCounts(dict(self._out_counts), dict(self._in_counts), self._ages)
        self._reset_counts()
        return counts

    def committed(self) -> None:
        """Exactly-once: the task's transaction committed: its counters are counted, and
        it holds no record since (`dirty` False)."""
        self.count(RecordCounts(self._out_counts, self._in_counts, self._ages))
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._out_counts.clear()
        self._in_counts.clear()
        self._ages = {}
        self.dirty = False

    def count(self, counts: RecordCounts) -> None:
        """Committed: the record counters, and the event age of each output (now − the
        timestamp of the input it came from)."""
        name = self.processor.name
        now_ms = time.time_ns() // 1_000_000
        for topic, stamps in counts.ages.items():
            self.metrics.event_age.observe(name, self.names.logical(topic), now_ms, stamps)
        for topic, n in counts.outputs.items():
            self.metrics.records_out.labels(name, self.names.logical(topic)).inc(n)
        for topic, n in counts.inputs.items():
            self.metrics.records_in.labels(name, self.names.logical(topic)).inc(n)

    async def close(self) -> None:
        """Drop the task without committing: an open transaction is aborted (best effort;
        else the next owner's InitProducerId, or the transaction timeout, aborts it)."""
        self._batches.clear()
        self.sends.clear()
        if not self.transactional:
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                if self.in_transaction:
                    self.in_transaction = False
                    await self.producer.abort_transaction()
        except Exception as exc:  # noqa: BLE001 - closing anyway; the broker aborts it later
            _log.info("abort_on_close_failed", partition=self.partition, error=repr(exc))
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self.producer.stop()
        except Exception as exc:  # noqa: BLE001 - a broken producer: nothing left to save
            _log.info("producer_stop_failed", partition=self.partition, error=repr(exc))

    def store_sizes(self) -> dict[str, int]:
        return {name: len(store) for name, store in self.stores.items()}
