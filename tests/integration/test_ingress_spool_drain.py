"""The drainer against the real broker (issue 30): a spool written by the previous release
(frame format v1, `tests/fixtures/spool-v1`, records already answered 200) drains after the
upgrade, from its committed position; a frame larger than the read window drains (before,
the drainer returned nothing for it and retried for ever)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from ingress._metrics import IngressMetrics
from ingress.publisher import Publisher
from ingress.spool import Spool
from runtime.kafka import consumer_config
from runtime.topics import ensure_topics
from schemas.registry import REGISTRY
from tests.support.ingress import spooled_message
from tests.support.processes import wait_for
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

V1_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "spool-v1"
V1_PREFIX = "spool-v1-fixture."  # the prefix of the topics in the fixture's records
TOPIC = "raw.yuju.message.v1"


async def drain(bootstrap: str, spool: Spool, prefix: str) -> None:
    """Run a publisher (producer and drainer) over `spool` until it is drained."""
    publisher = Publisher(
        bootstrap=bootstrap,
        spool=spool,
        adopted=[],
        produce_timeout_s=2.0,
        topic_prefix=prefix,
        replication_factor=1,
        metrics=IngressMetrics(),
    )
    await publisher.start()
    try:
        await wait_for(
            lambda: publisher.kafka_up and publisher.backlog == 0 and publisher.stall is None,
            timeout_s=90,
            interval_s=0.2,
            what="the spool drained",
        )
    finally:
        await publisher.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # no public API for this
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def test_a_spool_of_the_previous_release_drains_after_the_upgrade(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # The fixture's topics are fixed: records of earlier runs on a reused broker are skipped.
    await ensure_topics(kafka_bootstrap, [s for s in REGISTRY if s.writer == "ingress"], V1_PREFIX)
    before = await end_offsets(kafka_bootstrap, V1_PREFIX + TOPIC)
    directory = tmp_path / "worker-0"
    shutil.copytree(V1_FIXTURE, directory)
    spool = Spool(directory, max_bytes=10_000_000).open()
    assert spool.pending == 10  # 12 appended, 2 committed before the upgrade
    await drain(kafka_bootstrap, spool, V1_PREFIX)
    records = [
        r
        for r in await read_topic(kafka_bootstrap, V1_PREFIX + TOPIC, quiet_s=2)
        if r.offset >= before.get(r.partition, 0)
    ]
    assert sorted(r.headers["ce_id"] for r in records) == sorted(
        f"msg-chat-v1-{n}" for n in range(2, 12)
    )
    assert {r.key for r in records} == {b"chat-v1"}
    assert all("旧格式".encode() in (r.value or b"") for r in records)


async def test_a_frame_larger_than_the_read_window_drains(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "worker-0", max_bytes=100_000_000, read_window_bytes=256 * 1024).open()
    texts = ["small", "x" * 1_500_000, "small again"]
    for n, text in enumerate(texts):
        await spool.append(spooled_message(n, "chat-big", topic_prefix, text=text))
    await drain(kafka_bootstrap, spool, topic_prefix)
    records = await read_topic(kafka_bootstrap, topic_prefix + TOPIC, expect=3)
    assert [r.headers["ce_id"] for r in records] == [f"msg-chat-big-{n}" for n in range(3)]
    assert len(records[1].value or b"") > 1_500_000
    assert not list((tmp_path / "worker-0").glob("rejected-*"))
