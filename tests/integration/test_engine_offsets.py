"""Committed offsets read stably (issue 31), against the real broker (Kafka 4.4).

What aiokafka 0.14 sends: OffsetFetch v1-v3 (`aiokafka/protocol/commit.py` defines no later
version), never `require_stable` (v7+, KIP-447). What the broker does with it:
- while a transaction holding offsets is open, a plain fetch returns the offsets before it
  and a stable one UNSTABLE_OFFSET_COMMIT (`test_a_pending_transaction_...`);
- right after `commit_transaction` returns (EndTxn answered: commit decided, markers not
  necessarily applied) a plain fetch can still return the previous offset: 8 of 50 rounds
  here on 2026-12-07; the engine's stable fetch waits and never does
  (`test_right_after_a_commit_...`, which fails with `consumer.committed` in its place);
- after a new InitProducerId for the transactional id, which the engine always sends
  before it reads offsets, even a plain fetch is current on Kafka 4.x (its group
  coordinator applies the marker before answering WriteTxnMarkers; Kafka 3.x's classic
  one applied it asynchronously): `test_after_init_producer_id_...`. The engine's stable
  fetch does not depend on that."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from processors.engine._offsets import (
    UNSTABLE_OFFSET_COMMIT,
    StableOffsetFetchRequest,
    fetch_committed,
)
from runtime.kafka import consumer_config, producer_config

pytestmark = pytest.mark.kafka

ROUNDS = 30


@contextlib.asynccontextmanager
async def _transactional(bootstrap: str, tid: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**producer_config(bootstrap, transactional_id=tid))
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def _commit(producer: AIOKafkaProducer, tp: TopicPartition, group: str, offset: int) -> None:
    """One transaction: a record, then the group's offset of `tp`, then the commit."""
    await producer.begin_transaction()
    await producer.send_and_wait(tp.topic, b"x", partition=tp.partition)
    await producer.send_offsets_to_transaction({tp: OffsetAndMetadata(offset, "")}, group)
    await producer.commit_transaction()


@pytest.fixture
async def setup(
    kafka_bootstrap: str, topic_factory: Callable[..., Awaitable[str]]
) -> AsyncIterator[tuple[TopicPartition, str, AIOKafkaConsumer]]:
    """A topic's partition, a group name, and a consumer in that group (not subscribed)."""
    topic = await topic_factory()
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(**consumer_config(kafka_bootstrap, group))
    await consumer.start()
    try:
        yield TopicPartition(topic, 0), group, consumer
    finally:
        await consumer.stop()


async def test_a_pending_transaction_makes_the_stable_fetch_wait(
    kafka_bootstrap: str, setup: tuple[TopicPartition, str, AIOKafkaConsumer]
) -> None:
    tp, group, consumer = setup
    async with _transactional(kafka_bootstrap, f"tx-{uuid.uuid4().hex}") as producer:
        await _commit(producer, tp, group, 5)
        await producer.begin_transaction()
        await producer.send_and_wait(tp.topic, b"x", partition=0)
        await producer.send_offsets_to_transaction({tp: OffsetAndMetadata(9, "")}, group)
        assert await consumer.committed(tp) == 5  # plain: the offsets before the transaction
        coordinator = consumer._coordinator
        await coordinator.ensure_coordinator_known()
        raw = await coordinator._send_req(StableOffsetFetchRequest(group, {tp.topic: [0]}))
        ((_, ((_, _, _, _, code, _),), _),) = raw.topics
        assert code == UNSTABLE_OFFSET_COMMIT
        waiting = asyncio.create_task(fetch_committed(consumer, [tp]))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # retried while the transaction is open
        await producer.commit_transaction()
        assert await asyncio.wait_for(waiting, 30) == {tp: 9}


async def test_right_after_a_commit_the_stable_fetch_is_current(
    kafka_bootstrap: str, setup: tuple[TopicPartition, str, AIOKafkaConsumer]
) -> None:
    tp, group, consumer = setup
    stale_plain = 0
    async with _transactional(kafka_bootstrap, f"tx-{uuid.uuid4().hex}") as producer:
        for offset in range(1, ROUNDS + 1):
            await _commit(producer, tp, group, offset)
            plain, stable = await asyncio.gather(
                consumer.committed(tp), fetch_committed(consumer, [tp])
            )
            assert stable == {tp: offset}
            stale_plain += plain != offset
    print(f"plain OffsetFetch stale right after EndTxn: {stale_plain} of {ROUNDS}")


async def test_after_init_producer_id_a_plain_fetch_is_current_on_kafka_4(
    kafka_bootstrap: str, setup: tuple[TopicPartition, str, AIOKafkaConsumer]
) -> None:
    tp, group, consumer = setup
    tid = f"tx-{uuid.uuid4().hex}"
    for offset in range(1, ROUNDS // 2 + 1):
        async with _transactional(kafka_bootstrap, tid) as owner:
            await _commit(owner, tp, group, offset)
            async with _transactional(kafka_bootstrap, tid):  # the next owner's InitProducerId
                assert await consumer.committed(tp) == offset
                assert await fetch_committed(consumer, [tp]) == {tp: offset}
