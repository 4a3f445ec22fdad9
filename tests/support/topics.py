"""Read a whole topic back (read_committed) in tests: by expected count or until it is quiet."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from runtime.kafka import admin_client, consumer_config
from runtime.topics import topic_configs
from schemas.cloudevents import header_map
from tests.support.processes import wait_for


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    timestamp_ms: int


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    quiet_s: float = 2.0,
    timeout_s: float = 60.0,
) -> list[Consumed]:
    """Every committed record of `topic` from the beginning, in partition-then-offset order.

    Stops when `expect` records were read (fails if more arrive within `quiet_s`), or, without
    `expect`, when no record arrived for `quiet_s` after the topic's end offsets were reached.
    """
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout_s
        while not partitions:
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} does not exist")
            await consumer._client.force_metadata_update()  # no public API for this
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Consumed] = []
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            out.extend(
                Consumed(
                    tp.topic,
                    tp.partition,
                    r.offset,
                    r.key,
                    r.value,
                    header_map(r.headers),
                    r.timestamp,
                )
                for tp, records in batch.items()
                for r in records
            )
            if batch:
                last_new = time.monotonic()
            if expect is not None and len(out) >= expect:
                if time.monotonic() - last_new >= quiet_s or len(out) > expect:
                    break
                continue
            if (
                expect is None
                and time.monotonic() - last_new >= quiet_s
                and await _caught_up(consumer, tps)
            ):
                break
        else:
            raise AssertionError(
                f"read {len(out)} records from {topic} within {timeout_s:.0f}s, expected {expect}"
            )
        out.sort(key=lambda c: (c.partition, c.offset))
        return out
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Whether the consumer stands at every partition's end (read_committed: the last stable
    offset; a trailing commit marker is skipped by the fetcher, so the position reaches it).
    A quiet spell alone is not enough on a busy machine: a producer still flushing would make
    the reader stop short and a test report records as lost."""
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True


async def committed_offsets(bootstrap: str, group: str) -> dict[Any, Any]:
    """A consumer group's committed offsets by partition (empty for a group that never
    committed).

    On a fresh broker the offsets topic may still be loading (GroupCoordinatorNotAvailable,
    retriable): ask again until a deadline.
    """

    async def fetch() -> tuple[dict[Any, Any]] | None:  # a tuple: truthy even when empty
        admin = admin_client(bootstrap)
        await admin.start()
        try:
            offsets: dict[Any, Any] = await admin.list_consumer_group_offsets(group)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            return None
        finally:
            await admin.close()
        return (offsets,)

    (offsets,) = await wait_for(fetch, timeout_s=30, what=f"the coordinator of {group}")
    return dict(offsets)


async def committed_total(bootstrap: str, group: str) -> int:
    """Sum of a consumer group's committed offsets (0 for a group that never committed)."""
    offsets = await committed_offsets(bootstrap, group)
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


async def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    """Set `max.message.bytes` of an existing topic, as an operator may (`kafka-configs`).
    AlterConfigs replaces the topic's own configs: the others it must keep are sent along."""
    current = (await topic_configs(bootstrap, [topic]))[topic]
    own = (
        "cleanup.policy",
        "compression.type",
        "retention.ms",
        "delete.retention.ms",
        "min.insync.replicas",
        "unclean.leader.election.enable",
    )
    configs = {k: current[k] for k in own} | {"max.message.bytes": str(limit)}
    await alter_topic_configs(bootstrap, topic, configs)


async def alter_topic_configs(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    """Replace the configs set on `topic` itself (AlterConfigs: the ones not given are
    reset to the broker's defaults)."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()
