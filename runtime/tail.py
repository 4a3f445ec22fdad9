"""`wecom-stream tail TOPIC`: print committed records as JSON lines (key, headers, value)."""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from runtime.kafka import consumer_config
from schemas.cloudevents import header_map

__all__ = ["record_line", "tail"]


def record_line(record: Any) -> bytes:
    """One record as a JSON line; a JSON value is embedded, anything else kept as text."""
    try:
        value: Any = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        value = record.value.decode("utf-8", "replace")
    return orjson.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "headers": header_map(record.headers),
            "value": value,
        }
    )


async def tail(
    bootstrap: str,
    topic: str,
    *,
    from_end: bool = False,
    limit: int | None = None,
    idle_s: float | None = None,
) -> int:
    """Print records of `topic` (read_committed, no consumer group) until limit, idle or ^C."""
    consumer = AIOKafkaConsumer(
        topic,
        **consumer_config(bootstrap, None, auto_offset_reset="latest" if from_end else "earliest"),
    )
    await consumer.start()
    printed = 0
    last = time.monotonic()
    try:
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batch.values():
                for record in records:
                    sys.stdout.buffer.write(record_line(record) + b"\n")
                    printed += 1
                    last = time.monotonic()
            sys.stdout.flush()
            if idle_s is not None and time.monotonic() - last >= idle_s:
                break
    finally:
        await consumer.stop()
    return 0
