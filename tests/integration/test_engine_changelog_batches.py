"""The engine writes each store's changelog as whole record batches (`send_batch`): with
entries large enough to fill several batches per commit, every entry still lands on its
task's changelog partition with its latest value, in both processing modes. (The handler
runs under the name `normalizer`: the engine needs a registered DLQ topic.)"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from processors.engine import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.settings import ProcessingGuarantee
from tests.support.engine import engine_running
from tests.support.topics import read_topic
from tests.support.yuju_messages import produce_messages, raw_messages

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"
N = 60
BLOB = "x" * 100_000
"""An entry of ~100 KB: two fill a 256 KiB producer batch (`runtime.kafka`), so even a
commit with only three entries for a partition spans two batches."""


def _remember(record: InputRecord, ctx: Context) -> tuple[OutputRecord, ...]:
    blobs = ctx.store("blob")
    key = f"{record.partition}:{record.offset}"
    blobs.set(key, "stale")  # overwritten below: only the latest value goes out
    blobs.set(key, f"{BLOB}{record.offset}")
    return (OutputRecord(OUT, record.key, b"{}"),)


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
async def test_a_changelog_spanning_many_batches_is_complete(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    guarantee: ProcessingGuarantee,
) -> None:
    await produce_messages(
        producer,
        topic_prefix + RAW,
        list(raw_messages(N, conversations=6, duplicate_ratio=0, prefix="c")),
    )
    processor = Processor("normalizer", (RAW,), (OUT,), _remember, (StoreSpec("blob"),))
    async with engine_running(processor, kafka_bootstrap, topic_prefix, guarantee) as engine:
        outputs = asyncio.create_task(
            read_topic(kafka_bootstrap, topic_prefix + OUT, expect=N, quiet_s=0.5)
        )
        try:
            await asyncio.wait({engine, outputs}, return_when=asyncio.FIRST_COMPLETED)
            assert not engine.done(), "the engine stopped early"
            await outputs
        finally:
            outputs.cancel()

    inputs = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=N, quiet_s=0.2)
    changelog = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}wecom-stream.normalizer-blob-changelog",
        expect=N,
        quiet_s=0.5,
    )
    assert len({r.partition for r in inputs}) > 1
    expected = {f"{r.partition}:{r.offset}": f"{BLOB}{r.offset}" for r in inputs}
    got = {(r.key or b"").decode(): orjson.loads(r.value or b"null")[1] for r in changelog}
    assert got == expected
    assert all(r.partition == int((r.key or b"").decode().split(":")[0]) for r in changelog)
