"""`KeyPartitioner` chooses what aiokafka's default partitioner chooses (pure logic, a stub
producer's metadata), and follows a change of the topic's partition count."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from runtime.partitioning import KeyPartitioner


class _Metadata:
    def __init__(self, partitions: int) -> None:
        self.count = partitions
        self.cluster = self
        self.client = self

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.count)) if topic == "known" else None

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.count))


async def test_keyed_choices_equal_the_default_partitioner_and_follow_a_new_count() -> None:
    producer: Any = _Metadata(6)
    chooser = KeyPartitioner(producer, cache_max=50, recheck_every=1)
    default = DefaultPartitioner()
    keys = [f"chat-{i}".encode() for i in range(200)] * 2  # cached on the second round
    for count in (6, 12):
        producer.count = count
        every = list(range(count))
        for topic in ("known", "fetched"):
            for key in keys:
                assert await chooser.partition(topic, key) == default(key, every, every)
    assert {await chooser.partition("known", None) for _ in range(200)} <= set(range(12))


async def test_a_new_count_is_followed_within_recheck_every_choices() -> None:
    producer: Any = _Metadata(6)
    chooser = KeyPartitioner(producer, recheck_every=10)
    default = DefaultPartitioner()
    keys = [f"chat-{i}".encode() for i in range(40)]
    assert chooser.partition_now("known", keys[0]) is not None
    producer.count = 12
    twelve = list(range(12))
    choices = [chooser.partition_now("known", key) for key in keys]
    assert choices[9:] == [default(k, twelve, twelve) for k in keys[9:]]
    assert chooser.partition_now("unknown", keys[0]) is None
