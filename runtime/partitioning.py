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
does (per-key order across such a change is lost with any partitioner). The metadata is
looked at again every `recheck_every` choices per topic (aiokafka builds a new set per
look, a cost per record otherwise): a change is followed within that many records, while
the producer itself learns of it only at its next metadata refresh (`metadata_max_age_ms`).
"""

from __future__ import annotations

import random
from typing import Any

from aiokafka.partitioner import murmur2

__all__ = ["KeyPartitioner"]


class _Choices:
    """One topic's sorted partitions, the cached choice per key, and how many choices are
    left before the metadata is looked at again."""

    __slots__ = ("cache", "left", "partitions")

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = partitions
        self.cache: dict[bytes, int] = {}
        self.left = 0


class KeyPartitioner:
    """Default-partitioner choices for one started `AIOKafkaProducer`, cached per key."""

    def __init__(self, producer: Any, cache_max: int = 100_000, recheck_every: int = 1000) -> None:
        self._producer = producer
        self._cache_max = cache_max
        self._recheck_every = recheck_every
        self._topics: dict[str, _Choices] = {}

    async def partition(self, topic: str, key: bytes | None) -> int:
        """The partition for `key` on `topic` (waits for the topic's metadata if unknown)."""
        partition = self.partition_now(topic, key)
        if partition is None:
            current = await self._producer.partitions_for(topic)  # waits for the metadata
            partition = self._pick(self._checked(topic, current), key)
        return partition

    def partition_now(self, topic: str, key: bytes | None) -> int | None:
        """`partition` without waiting: None while the topic's metadata is not known."""
        known = self._topics.get(topic)
        if known is None or known.left <= 0:
            current = self._producer.client.cluster.partitions_for_topic(topic)
            if not current:
                return None
            known = self._checked(topic, current)
        known.left -= 1
        return self._pick(known, key)

    def _checked(self, topic: str, current: Any) -> _Choices:
        """The topic's choices, started over if the partition count changed or the cache is
        full; the metadata was just looked at."""
        known = self._topics.get(topic)
        if (
            known is None
            or len(known.partitions) != len(current)
            or len(known.cache) >= self._cache_max
        ):
            known = self._topics[topic] = _Choices(sorted(current))
        known.left = self._recheck_every
        return known

    @staticmethod
    def _pick(known: _Choices, key: bytes | None) -> int:
        if key is None:
            return random.choice(known.partitions)  # noqa: S311 - spreading load, not security
        partition = known.cache.get(key)
        if partition is None:
            partitions = known.partitions
            partition = known.cache[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
        return partition
