"""Restore stores from their changelog partitions: read each from the beginning to its last
stable offset with `read_committed`, before the task processes anything. Private to the
engine."""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.engine._setup import EngineError
from processors.engine._stores import MemoryStore
from runtime.kafka import consumer_config

__all__ = ["restore_stores"]

_NO_PROGRESS_TIMEOUT_S = 120.0


async def restore_stores(bootstrap: str, stores: Mapping[TopicPartition, MemoryStore]) -> int:
    """Replay every changelog partition into its store; returns the records applied.

    The caller has already initialised the task's transactional producer, which completed
    or aborted any transaction a previous owner left open, so the last stable offset is the
    true end of the committed state.
    """
    if not stores:
        return 0
    consumer = AIOKafkaConsumer(
        **consumer_config(
            bootstrap, None, isolation_level="read_committed", fetch_max_bytes=16 * 1024 * 1024
        )
    )
    await consumer.start()
    applied = 0
    try:
        tps = list(stores)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        last_progress = time.monotonic()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
            for tp, records in batch.items():
                store = stores[tp]
                for rec in records:
                    store.restore(rec.key, rec.value)
                applied += len(records)
            if batch:
                last_progress = time.monotonic()
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - last_progress > _NO_PROGRESS_TIMEOUT_S:
                raise EngineError(
                    f"restoring {sorted(str(tp) for tp in remaining)} made no progress for "
                    f"{_NO_PROGRESS_TIMEOUT_S:.0f}s; check the broker and the changelog topics"
                )
    finally:
        await consumer.stop()
    return applied
