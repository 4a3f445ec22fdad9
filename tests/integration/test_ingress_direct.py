"""The request path's batching producer (`ingress._direct`) against the real broker: every
record of concurrent callbacks acknowledged and on its topic, and nothing of an answered
pass kept alive until the pass's deadline (the deadline timer once held every record of the
last `produce_timeout_s`: ~25k records at 10k callbacks/s, and 150-190 ms GC pauses)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ingress._direct import DirectProducer, _Item
from ingress._frames import SpoolRecord
from runtime.kafka import producer_config

RECORDS = 300


def _alive_items() -> int:
    gc.collect()
    return sum(isinstance(o, _Item) for o in gc.get_objects())


async def test_answered_records_are_released_before_the_deadline(
    kafka_bootstrap: str,
    topic_factory: Callable[..., Awaitable[str]],
    consumer_factory: Callable[..., Awaitable[AIOKafkaConsumer]],
) -> None:
    topic = await topic_factory(partitions=3)
    producer = AIOKafkaProducer(**producer_config(kafka_bootstrap, linger_ms=0))
    await producer.start()
    direct = DirectProducer(producer, timeout_s=120.0)  # a deadline far beyond the test
    direct.start()
    try:
        before = _alive_items()
        outcomes = await asyncio.gather(
            *(
                direct.produce(
                    SpoolRecord(
                        topic=topic,
                        key=f"chat-{i % 7}".encode(),
                        value=b'{"n":%d}' % i,
                        headers=[("ce_id", str(i).encode())],
                        timestamp_ms=1_700_000_000_000 + i,
                    )
                )
                for i in range(RECORDS)
            )
        )
        assert outcomes == [None] * RECORDS  # every one acknowledged
        for _ in range(100):  # up to 5 s; the deadline is 120 s away: not the timer firing
            if _alive_items() == before:
                break
            await asyncio.sleep(0.05)
        assert _alive_items() == before
    finally:
        await direct.stop()
        await producer.stop()

    consumer = await consumer_factory(topic, auto_offset_reset="earliest")
    seen: set[bytes] = set()
    async with asyncio.timeout(30):
        while len(seen) < RECORDS:
            batch = await consumer.getmany(timeout_ms=1000)
            seen.update(r.value for records in batch.values() for r in records)
    assert seen == {b'{"n":%d}' % i for i in range(RECORDS)}
