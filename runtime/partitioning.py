"""The partition of a record appended to a record batch by hand (`create_batch` +
`send_batch`), chosen exactly as a plain `producer.send(topic, key=...)` would choose it.

Both hot paths that bypass aiokafka's per-record `send` use this: the ingress's produce
passes (`ingress/_direct.py`) and the engine's output batches
(`processors/engine/_batches.py`). Keeping one copy keeps them agreeing with each other,
with the spool drainer's and the DLQ's `send`, and with any Java client keyed the same way.

The rule is the default partitioner's (aiokafka's `DefaultPartitioner`, the Java client's
for keyed records): `murmur2(key) & 0x7fffffff % n` over the topic's partitions sorted by id;
a record without a key goes to a random partition. murmur2 is pure Python in aiokafka (a few
µs), so the partition of each key is cached, per topic, up to `cache_max` keys (then the
cache starts over). The cache is rebuilt when the producer's metadata shows a different
partition count for the topic, so after partitions are added new records follow what `send`
does (per-key order across such a change is lost with any partitioner).
"""

from __future__ import annotations

import random
from typing import Any

from aiokafka.partitioner import murmur2

__all__ = ["KeyPartitioner"]


class KeyPartitioner:
    """Default-partitioner choices for one started `AIOKafkaProducer`, cached per key."""

    def __init__(self, producer: Any, cache_max: int = 100_000) -> None:
        self._producer = producer
        self._cache_max = cache_max
        self._topics: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    async def partition(self, topic: str, key: bytes | None) -> int:
        """The partition for `key` on `topic` (waits for the topic's metadata if unknown)."""
        current = self._producer.client.cluster.partitions_for_topic(topic)
        if not current:
            current = await self._producer.partitions_for(topic)  # waits for the metadata
        return self._choose(topic, key, current)

    def partition_now(self, topic: str, key: bytes | None) -> int | None:
        """`partition` without waiting: None while the topic's metadata is not known."""
        current = self._producer.client.cluster.partitions_for_topic(topic)
        return self._choose(topic, key, current) if current else None

    def _choose(self, topic: str, key: bytes | None, current: Any) -> int:
        known = self._topics.get(topic)
        if known is None or len(known[0]) != len(current) or len(known[1]) >= self._cache_max:
            known = self._topics[topic] = (sorted(current), {})
        partitions, cache = known
        if key is None:
            return random.choice(partitions)  # noqa: S311 - spreading load, not security
        partition = cache.get(key)
        if partition is None:
            partition = cache[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
        return partition
