"""`OutputBatches` without Kafka (pure logic, a stub producer): keyed records go where
aiokafka's default partitioner would send them, each partition's records stay in order
across full batches, no batch is larger than its topic takes, and `flush` sends what is
open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.memory_records import MemoryRecords

from processors.engine._batches import OutputBatches

_BATCH_BYTES = 130
"""Batches of at most this many bytes: three of the records below fill one."""


def _batches(producer: Any, futures: list[asyncio.Future[Any]]) -> OutputBatches:
    return OutputBatches(producer, futures, None, {"out": _BATCH_BYTES}, transactional=False)


class _Cluster:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))


class _Client:
    def __init__(self, partitions: int) -> None:
        self.cluster = _Cluster(partitions)


class _Producer:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.client = _Client(partitions)
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        data = bytes(batch._build())
        assert len(data) <= _BATCH_BYTES or batch.record_count() == 1  # the topic's limit
        records = MemoryRecords(data).next_batch()
        self.sent.append((topic, partition, [(r.key, r.value) for r in records]))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@pytest.mark.parametrize("engine_way", [False, True])
async def test_keyed_records_follow_the_default_partitioner_in_order(engine_way: bool) -> None:
    """Through `append`, or as the engine appends: `try_append`, and `append` only when
    that returns False (a full batch here, so both branches run)."""
    producer = _Producer(partitions=6)
    futures: list[asyncio.Future[Any]] = []
    batches = _batches(producer, futures)
    keys = [f"chat-{i % 37:05d}".encode() for i in range(500)]
    for n, key in enumerate(keys):
        value = b"%03d" % n
        if not (engine_way and batches.try_append("out", key, value, [])):
            await batches.append("out", key, value, [])
    await batches.flush()
    assert len(futures) == len(producer.sent)
    partitioner = DefaultPartitioner()
    seen: dict[bytes, list[int]] = {}
    for topic, partition, records in producer.sent:
        assert topic == "out"
        assert 0 < len(records) <= 3
        for rec_key, rec_value in records:
            assert rec_key is not None
            assert rec_value is not None
            assert partition == partitioner(rec_key, list(range(6)), list(range(6)))
            seen.setdefault(rec_key, []).append(int(rec_value))
    assert sum(len(v) for v in seen.values()) == 500
    for key, numbers in seen.items():
        assert numbers == sorted(numbers), key
        assert numbers == [n for n, k in enumerate(keys) if k == key]


async def test_try_append_without_metadata_appends_nothing() -> None:
    producer = _Producer(partitions=3)
    producer.client.cluster.partitions = 0  # metadata not known yet
    batches = _batches(producer, [])
    assert batches.try_append("out", b"a", b"1", []) is False
    await batches.flush()
    assert producer.sent == []
    await batches.append("out", b"a", b"1", [])  # waits for `partitions_for`
    await batches.flush()
    assert [len(r) for _, _, r in producer.sent] == [1]


async def test_flush_sends_open_batches_once_and_clear_drops_them() -> None:
    producer = _Producer(partitions=3)
    batches = _batches(producer, [])
    await batches.append("out", b"a", b"1", [])
    await batches.append("out", None, b"2", [])
    assert producer.sent == []
    await batches.flush()
    assert sum(len(r) for _, _, r in producer.sent) == 2
    await batches.flush()
    assert sum(len(r) for _, _, r in producer.sent) == 2
    await batches.append("out", b"a", b"3", [])
    batches.clear()
    await batches.flush()
    assert sum(len(r) for _, _, r in producer.sent) == 2
