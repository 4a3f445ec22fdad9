"""The session broker is a real Kafka: idempotent produce, transactions, read_committed."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from runtime.kafka import producer_config

pytestmark = pytest.mark.kafka


async def test_idempotent_produce_and_consume(
    kafka_bootstrap: str,
    topic_factory: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    consumer_factory: Callable[..., Awaitable[AIOKafkaConsumer]],
) -> None:
    topic = await topic_factory(partitions=3)
    sent = [f"v{i}".encode() for i in range(200)]
    for value in sent:
        await producer.send(topic, value, key=b"k")
    await producer.flush()

    consumer = await consumer_factory(topic)
    got: list[bytes] = []
    while len(got) < len(sent):
        batch = await consumer.getmany(timeout_ms=5000)
        assert batch, "no records within 5 s"
        got.extend(r.value for records in batch.values() for r in records)
    assert got == sent  # one key = one partition = order kept


async def test_aborted_transaction_is_invisible_to_read_committed(
    kafka_bootstrap: str,
    topic_factory: Callable[..., Awaitable[str]],
    consumer_factory: Callable[..., Awaitable[AIOKafkaConsumer]],
) -> None:
    topic = await topic_factory()
    txn = AIOKafkaProducer(
        **producer_config(kafka_bootstrap, transactional_id=f"test-{uuid.uuid4()}")
    )
    await txn.start()
    try:
        await txn.begin_transaction()
        await txn.send(topic, b"aborted")
        await txn.abort_transaction()
        async with txn.transaction():
            await txn.send(topic, b"committed")
    finally:
        await txn.stop()
    consumer = await consumer_factory(topic)
    batch = await consumer.getmany(timeout_ms=5000)
    values = [r.value for records in batch.values() for r in records]
    assert values == [b"committed"]
