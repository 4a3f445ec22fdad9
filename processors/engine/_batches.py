"""Output and DLQ records appended straight into per-partition record batches, sent with
`send_batch`. Private to the engine.

Why: aiokafka's `send` costs about 15 µs of CPU per record (futures, accumulator lookups,
the pure-Python murmur2 of the default partitioner); appending to a `BatchBuilder` and
sending whole batches costs a few µs. The changelog is written in batches too
(`_changelog.py`). A batch holds at most what its topic takes (`_limits.py`).

Partitioning is exactly the default partitioner's, as `send` would choose it
(`runtime.partitioning.KeyPartitioner`, shared with the ingress): per-key order and
co-partitioning with anything else keyed the same way hold.

Order: records of one partition are appended to one open batch in handler order; a batch
that is full is sent before the next one is opened, and `flush` sends every open batch, so
each partition's records reach the broker in order (the producer is idempotent, so retries
keep that order too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from processors.engine._limits import new_batch
from runtime.partitioning import KeyPartitioner

__all__ = ["OutputBatches"]


class OutputBatches:
    """Open batches per (topic, partition) of one producer; sends go to `futures`.

    Each batch is compressed with `compression_type` (the producer's) and holds at most
    `max_bytes[topic]` (the largest record the topic takes, `_limits.py`), so a batch of
    several records never exceeds the topic's limit."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        futures: list[asyncio.Future[Any]],
        compression_type: str | None,
        max_bytes: Mapping[str, int],
        *,
        transactional: bool,
    ) -> None:
        self._producer = producer
        self._futures = futures
        self._open: dict[tuple[str, int], Any] = {}
        self._partitioner = KeyPartitioner(producer)
        self._codec = compression_type
        self._max_bytes = max_bytes
        self._transactional = transactional

    def _new_batch(self, topic: str) -> Any:
        return new_batch(self._codec, self._max_bytes[topic], transactional=self._transactional)

    async def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        partition = await self._partitioner.partition(topic, key)
        tp = (topic, partition)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._new_batch(topic)
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
            await self._send(tp, batch)
            batch = self._open[tp] = self._new_batch(topic)
            batch.append(key=key, value=value, timestamp=None, headers=headers)  # a first fits

    def try_append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> bool:
        """`append` where it needs no wait (the common case, spared two coroutines per
        record); False, with nothing appended, where it would wait: the topic's metadata is
        not known yet or the open batch is full. Then call `append`."""
        partition = self._partitioner.partition_now(topic, key)
        if partition is None:
            return False
        tp = (topic, partition)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._new_batch(topic)
        return batch.append(key=key, value=value, timestamp=None, headers=headers) is not None

    async def _send(self, tp: tuple[str, int], batch: Any) -> None:
        self._futures.append(await self._producer.send_batch(batch, tp[0], partition=tp[1]))

    async def flush(self) -> None:
        """Send every open batch (after each fetched batch, and at commit time before the
        sends are awaited)."""
        open_batches, self._open = self._open, {}
        for tp, batch in open_batches.items():
            if batch.record_count():
                await self._send(tp, batch)

    def clear(self) -> None:
        """Drop the open batches unsent (the task closes without committing)."""
        self._open.clear()
