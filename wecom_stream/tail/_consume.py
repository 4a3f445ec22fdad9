"""tail's consumer loop: read_committed, no consumer group, every partition of one topic.

Start: the beginning, the end (`from_end`) or the first offset at `since_ms`
(`offsets_for_times`). Stop: without `follow`, at the end offsets (last stable offsets)
seen at the start; else on `limit` printed records, `idle_s` without one, or SIGINT/SIGTERM
(a clean stop, exit code 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.errors import WecomStreamError
from runtime.kafka import consumer_config
from runtime.supervisor import stop_on_signals
from wecom_stream.tail._filters import RecordFilter
from wecom_stream.tail._records import RecordView

__all__ = ["Output", "StopTail", "TailOptions", "tail_records"]


class Output(Protocol):
    """Where records go: `write` one, `flush` after each batch; either raises `StopTail`
    when the output is gone (a closed pipe)."""

    def write(self, view: RecordView) -> None: ...

    def flush(self) -> None: ...


_ASSIGN_TIMEOUT_S = 30.0


class StopTail(Exception):
    """Raised by an `Output` to end the tail quietly (e.g. `| head` closed the pipe)."""


@dataclass(frozen=True, slots=True)
class TailOptions:
    """What to read and when to stop."""

    topic: str
    follow: bool = False
    from_end: bool = False
    since_ms: int | None = None
    limit: int | None = None
    idle_s: float | None = None
    filter: RecordFilter = field(default_factory=RecordFilter)


async def _assigned(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    if topic not in await consumer.topics():
        raise WecomStreamError(
            f"topic {topic} does not exist: check the name and WECOM_STREAM_TOPIC_PREFIX, "
            "or create the registry's topics (`wecom-stream topics create`)"
        )
    consumer.subscribe([topic])
    deadline = time.monotonic() + _ASSIGN_TIMEOUT_S
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise WecomStreamError(f"no partitions of {topic} were assigned; is the broker up?")
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


async def _seek(consumer: AIOKafkaConsumer, parts: list[TopicPartition], opts: TailOptions) -> None:
    if opts.since_ms is not None:
        found = await consumer.offsets_for_times({tp: opts.since_ms for tp in parts})
        for tp in parts:
            at = found.get(tp)
            if at is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)
    elif opts.from_end:
        await consumer.seek_to_end(*parts)
    else:
        await consumer.seek_to_beginning(*parts)


async def tail_records(bootstrap: str, opts: TailOptions, out: Output) -> int:
    """Read `opts.topic`, writing each record the filter keeps to `out`; 0 when done."""
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    with stop_on_signals() as stop:
        await consumer.start()
        try:
            await _run(consumer, opts, out, stop)
            out.flush()
        except StopTail:
            pass
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer.stop()
    return 0


async def _run(
    consumer: AIOKafkaConsumer, opts: TailOptions, out: Output, stop: asyncio.Event
) -> None:
    parts = await _assigned(consumer, opts.topic)
    await _seek(consumer, parts, opts)
    ends: dict[TopicPartition, int] = {}
    if not opts.follow:
        ends = await consumer.end_offsets(parts)
        await _drop_done(consumer, ends)
    printed = 0
    last = time.monotonic()
    while not stop.is_set() and (opts.follow or ends):
        batch: dict[TopicPartition, list[Any]] = await consumer.getmany(
            timeout_ms=200, max_records=500
        )
        for tp, records in batch.items():
            for record in records:
                if tp in ends and record.offset >= ends[tp]:
                    break  # written after the start: not this tail's
                view = RecordView.of(record)
                if opts.filter.matches(view):
                    out.write(view)
                    printed += 1
                    last = time.monotonic()
                    if opts.limit is not None and printed >= opts.limit:
                        return
        out.flush()
        await _drop_done(consumer, ends)
        if opts.idle_s is not None and time.monotonic() - last >= opts.idle_s:
            return


async def _drop_done(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
    """Forget (and pause) the partitions read up to their end offset."""
    for tp in list(ends):
        if await consumer.position(tp) >= ends[tp]:
            consumer.pause(tp)
            del ends[tp]
