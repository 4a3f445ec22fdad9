"""The engine against the real broker: zombie fencing by per-task transactional id, state
restored across restarts, several group members, the at-least-once comparison mode."""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata
from prometheus_client.parser import text_string_to_metric_families

from processors.engine import EngineError, Names
from processors.engine._setup import prepare_topics
from processors.runner import load_processor
from runtime.kafka import producer_config
from runtime.settings import ProcessorSettings
from schemas.chat import ChatMessage
from tests.support.processes import CliProcess, wait_for
from tests.support.topics import committed_total, read_topic
from tests.support.yuju_messages import RawMessage, produce_messages, raw_messages

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"


def events(proc: CliProcess, event: str) -> list[dict[str, Any]]:
    text = proc.log_path.read_text(errors="replace")
    lines = [orjson.loads(ln) for ln in text.splitlines() if ln.startswith("{") and event in ln]
    return [e for e in lines if e.get("event") == event]


def distinct_ids(messages: list[RawMessage]) -> set[str]:
    return {m.message_id for m in messages}


async def test_new_owner_of_a_task_fences_the_zombie(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str]
) -> None:
    names = Names("normalizer", topic_prefix)
    out = names.topic(OUT)
    tid = names.transactional_id(0)
    zombie = AIOKafkaProducer(**producer_config(kafka_bootstrap, transactional_id=tid))
    owner = AIOKafkaProducer(**producer_config(kafka_bootstrap, transactional_id=tid))
    await zombie.start()
    try:
        await zombie.begin_transaction()
        await zombie.send_and_wait(out, b"from the zombie", partition=0)
        await owner.start()  # InitProducerId: bumps the epoch, aborts the zombie's transaction

        async def zombie_commits() -> None:
            offsets = {TopicPartition(names.topic(RAW), 0): OffsetAndMetadata(10, "")}
            await zombie.send_offsets_to_transaction(offsets, names.group)
            await zombie.commit_transaction()

        with pytest.raises((ProducerFenced, KafkaError)):
            await zombie_commits()
        await owner.begin_transaction()
        await owner.send(out, b"from the owner", partition=0)
        await owner.commit_transaction()
    finally:
        with contextlib.suppress(KafkaError):
            await zombie.stop()
        await owner.stop()
    records = await read_topic(kafka_bootstrap, out, quiet_s=1)
    assert [r.value for r in records] == [b"from the owner"]
    assert await committed_total(kafka_bootstrap, names.group) == 0


@pytest.mark.parametrize("store", ["memory", "disk"])
async def test_state_is_restored_after_a_restart(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
    store: str,
) -> None:
    """Memory: the restart replays the whole changelog. Disk: the local checkpoint holds
    the state, so the restart replays nothing (the changelog ends at the checkpoint)."""
    first = list(raw_messages(400, conversations=12, duplicate_ratio=0, prefix="a"))
    env = {"WECOM_STREAM_METRICS_PORT": "0", "WECOM_STREAM_STORE_KIND": store}
    await produce_messages(producer, topic_prefix + RAW, first)
    proc = cli_processes.start("process", "normalizer", env=env)
    await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=400, quiet_s=0.5)
    assert proc.terminate() == 0

    # platform retries of the first messages, arriving after the restart, and new ones
    later = list(raw_messages(100, conversations=12, duplicate_ratio=0, prefix="b"))
    await produce_messages(producer, topic_prefix + RAW, first[::4] + later)
    proc = cli_processes.start("process", "normalizer", env=env)
    out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=500, quiet_s=2)
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert sorted(ids) == sorted(distinct_ids(first) | distinct_ids(later))
    assert proc.terminate() == 0
    (assigned,) = events(proc, "partitions_assigned")
    assert assigned["restoring"] == [0, 1, 2, 3, 4, 5]
    (restored,) = events(proc, "tasks_restored")
    if store == "memory":
        assert restored["restored_records"] >= 400  # one `seen` entry per message at least
    else:
        assert restored["restored_records"] == 0


async def test_two_members_share_partitions_and_output_stays_exact(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    messages = list(raw_messages(4000, conversations=60, seed=3))
    await produce_messages(producer, topic_prefix + RAW, messages)
    proc = cli_processes.start(
        "process", "normalizer", "--instances", "2", env={"WECOM_STREAM_METRICS_PORT": "0"}
    )
    distinct = distinct_ids(messages)
    out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=len(distinct), quiet_s=2)
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert len(ids) == len(set(ids))
    assert set(ids) == distinct
    group = f"{topic_prefix}wecom-stream.normalizer.v2"

    def split() -> bool:
        """The members' latest assignments split the six tasks, each owned once. Checked
        before stopping: a member that leaves first hands its tasks to the other, which
        logs an assignment of all six (the race this test once lost: both showed 0-5)."""
        last: dict[int, list[int]] = {}
        for e in events(proc, "partitions_assigned"):
            last[e["instance"]] = e["tasks"]
        return set(last) == {0, 1} and sorted(last[0] + last[1]) == [0, 1, 2, 3, 4, 5]

    await wait_for(split, timeout_s=60, what="the six tasks split between both members")
    # Each member reports consumer lag only for the partitions it owns now: a revoked
    # partition's series is removed (its new owner reports it), never left stale.
    last: dict[int, list[int]] = {}
    for e in events(proc, "partitions_assigned"):
        last[e["instance"]] = e["tasks"]
    ports = {e["instance"]: e["metrics_port"] for e in events(proc, "processor_starting")}
    async with aiohttp.ClientSession() as session:
        for instance, port in ports.items():
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            lagged = {
                int(sample.labels["partition"])
                for family in text_string_to_metric_families(text)
                if family.name == "wecom_stream_processor_consumer_lag"
                for sample in family.samples
            }
            assert lagged <= set(last[instance]), (instance, lagged, last[instance])
    assert proc.terminate() == 0
    assert await committed_total(kafka_bootstrap, group) == len(messages)


async def test_at_least_once_mode_commits_after_outputs(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    messages = list(raw_messages(1500, conversations=30, seed=9))
    await produce_messages(producer, topic_prefix + RAW, messages)
    proc = cli_processes.start(
        "process",
        "normalizer",
        env={
            "WECOM_STREAM_METRICS_PORT": "0",
            "WECOM_STREAM_PROCESSING_GUARANTEE": "at-least-once",
        },
    )
    distinct = distinct_ids(messages)
    out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=len(distinct), quiet_s=2)
    assert {ChatMessage.model_validate_json(r.value or b"").message_id for r in out} == distinct
    assert proc.terminate() == 0
    group = f"{topic_prefix}wecom-stream.normalizer.v2"
    assert await committed_total(kafka_bootstrap, group) == len(messages)
    (started,) = events(proc, "processor_starting")
    assert started["guarantee"] == "at-least-once"


async def test_inputs_that_are_not_co_partitioned_refuse_to_start(
    kafka_bootstrap: str, topic_prefix: str, topic_factory: Any
) -> None:
    # More partitions than the registry's 6 (fewer is refused before, by `runtime.topics`).
    await topic_factory("raw.yuju.room-join.v1", partitions=8)  # the others get 6
    settings = ProcessorSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    with pytest.raises(EngineError, match="not co-partitioned"):
        await prepare_topics(load_processor("membership", settings), settings, kafka_bootstrap)
    topics = await prepare_topics(load_processor("normalizer", settings), settings, kafka_bootstrap)
    assert topics.partitions == 6
    assert topics.names.group == f"{topic_prefix}wecom-stream.normalizer.v2"  # state version 2
