"""At-least-once mode, whose commits finish in the background while the next records are
processed: an output the broker refuses fails the commit, and then neither the input
offsets nor the store's changelog entries of those records are committed (a store never
remembers a record whose output was lost), while the member restarts and retries.

The broker refuses the outputs because the output topic's `max.message.bytes` is lowered
after the engine started: the engine checks outputs against the limit it read at start-up
(a lower one at start-up sends them to the DLQ instead, `test_engine_poison.py`), so the
failure comes from Kafka itself, in the delivery of the sealed outputs.
(The handler runs under the name `normalizer`: the engine needs a registered DLQ topic.)"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from processors.engine import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.topics import ensure_topics
from schemas.registry import by_name
from tests.support.engine import engine_running
from tests.support.processes import wait_for
from tests.support.topics import committed_total, read_topic, set_max_message_bytes
from tests.support.yuju_messages import produce_messages, raw_messages

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"
N = 40
HANDLED: list[int] = []
WARM_UP = b"warm-up"


def _remember_and_emit(record: InputRecord, ctx: Context) -> tuple[OutputRecord, ...]:
    HANDLED.append(record.offset)
    ctx.store("seen").set(f"{record.partition}:{record.offset}", 1)
    if record.value == WARM_UP:
        return (OutputRecord(OUT, record.key, b"{}"),)
    return (OutputRecord(OUT, record.key, b"x" * 5_000),)


async def test_a_refused_output_commits_neither_offsets_nor_changelog(
    kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    await ensure_topics(kafka_bootstrap, [by_name(RAW), by_name(OUT)], topic_prefix)
    processor = Processor("normalizer", (RAW,), (OUT,), _remember_and_emit, (StoreSpec("seen"),))
    group = f"{topic_prefix}wecom-stream.normalizer"
    HANDLED.clear()
    async with engine_running(processor, kafka_bootstrap, topic_prefix, "at-least-once") as engine:
        # one record through: the engine has read the topics' limits and committed it
        await producer.send_and_wait(topic_prefix + RAW, WARM_UP, key=b"warm-up")
        await wait_for(lambda: committed_total(kafka_bootstrap, group), 60, what="a commit")
        await set_max_message_bytes(kafka_bootstrap, topic_prefix + OUT, 1_000)
        await produce_messages(
            producer,
            topic_prefix + RAW,
            list(raw_messages(N, conversations=6, duplicate_ratio=0, prefix="r")),
        )
        async with asyncio.timeout(90):  # every record handled, then again after a restart
            while len(HANDLED) < 1 + 2 * N:
                assert not engine.done(), "a failed commit must restart the member, not stop"
                await asyncio.sleep(0.1)
        assert not engine.done()
        assert await committed_total(kafka_bootstrap, group) == 1  # the warm-up only
    changelog = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}wecom-stream.normalizer-seen-changelog",
        quiet_s=1.0,
    )
    assert [r.key for r in changelog] == [b"%d:0" % changelog[0].partition]  # the warm-up's
    assert await committed_total(kafka_bootstrap, group) == 1
