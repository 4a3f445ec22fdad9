"""At-least-once mode, whose commits finish in the background while the next records are
processed: an output the broker refuses fails the commit, and then neither the input
offsets nor the store's changelog entries of those records are committed (a store never
remembers a record whose output was lost), while the member restarts and retries.

The broker refuses the outputs because the output topic is created with a
`max.message.bytes` far below what the engine's own size check allows (the registry's
limit): the failure comes from Kafka itself, in the delivery of the sealed outputs.
(The handler runs under the name `normalizer`: the engine needs a registered DLQ topic.)"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from processors.engine import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.topics import ensure_topics
from schemas.registry import TopicSpec, by_name
from tests.support.engine import engine_running
from tests.support.topics import committed_total, read_topic
from tests.support.yuju_messages import produce_messages, raw_messages

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"
N = 40
HANDLED: list[int] = []


def _remember_and_emit(record: InputRecord, ctx: Context) -> tuple[OutputRecord, ...]:
    HANDLED.append(record.offset)
    ctx.store("seen").set(f"{record.partition}:{record.offset}", 1)
    return (OutputRecord(OUT, record.key, b"x" * 5_000),)


async def test_a_refused_output_commits_neither_offsets_nor_changelog(
    kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    small_out = TopicSpec(OUT, "test", "", "", max_message_bytes=1_000)
    await ensure_topics(kafka_bootstrap, [by_name(RAW), small_out], topic_prefix)
    await produce_messages(
        producer,
        topic_prefix + RAW,
        list(raw_messages(N, conversations=6, duplicate_ratio=0, prefix="r")),
    )
    processor = Processor("normalizer", (RAW,), (OUT,), _remember_and_emit, (StoreSpec("seen"),))
    group = f"{topic_prefix}wecom-stream.normalizer"
    HANDLED.clear()
    async with engine_running(processor, kafka_bootstrap, topic_prefix, "at-least-once") as engine:
        async with asyncio.timeout(90):  # every record handled, then again after a restart
            while len(HANDLED) < 2 * N:
                assert not engine.done(), "a failed commit must restart the member, not stop"
                await asyncio.sleep(0.1)
        assert not engine.done()
        assert await committed_total(kafka_bootstrap, group) == 0
    changelog = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}wecom-stream.normalizer-seen-changelog",
        quiet_s=1.0,
    )
    assert changelog == []
    assert await committed_total(kafka_bootstrap, group) == 0
