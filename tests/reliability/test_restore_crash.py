"""A processor SIGKILLed while it restores its state: its producers had already fenced the
previous owner, nothing was processed, its stores were half caught up; the next owner
restores (a disk store: from the half-way checkpoint) and processes every message exactly
once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from runtime.kafka import consumer_config
from schemas.chat import ChatMessage
from tests.integration.test_engine_kafka import distinct_ids, events
from tests.support.processes import wait_for
from tests.support.topics import read_topic
from tests.support.yuju_messages import produce_messages, raw_messages

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"
SLOW_CLI = [sys.executable, "-m", "tests.support.slow_restore"]


async def changelog_records(bootstrap: str, prefix: str) -> int:
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        tps = [
            TopicPartition(f"{prefix}wecom-stream.normalizer.v2-{store}-changelog", p)
            for store in ("seen", "mode")
            for p in range(6)
        ]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends.values())


@pytest.mark.parametrize("store", ["memory", "disk"])
async def test_sigkill_during_restore_then_the_next_owner_processes_exactly_once(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
    tmp_path: Path,
    store: str,
) -> None:
    env = {
        "WECOM_STREAM_METRICS_PORT": "0",
        "WECOM_STREAM_SESSION_TIMEOUT_MS": "6000",
        "WECOM_STREAM_STORE_KIND": store,
    }
    first = list(raw_messages(600, conversations=20, duplicate_ratio=0.1, prefix="a", seed=5))
    await produce_messages(producer, topic_prefix + RAW, first)
    proc = cli_processes.start("process", "normalizer", env=env)
    await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=len(distinct_ids(first)))
    assert proc.terminate() == 0
    total = await changelog_records(kafka_bootstrap, topic_prefix)

    # The task moves to a replica without local state (another state dir), which restores
    # 50 records a second and is killed half-way; new messages and retries of old ones
    # wait meanwhile. The next process on that replica finishes the restore.
    later = list(raw_messages(300, conversations=20, duplicate_ratio=0, prefix="b", seed=6))
    await produce_messages(producer, topic_prefix + RAW, first[::5] + later)
    replica = {**env, "WECOM_STREAM_STATE_DIR": str(tmp_path / "replica")}
    slow_env = {**replica, "SLOW_RESTORE_STEP": "50", "SLOW_RESTORE_PAUSE_S": "1"}
    slow = cli_processes.start("process", "normalizer", env=slow_env, cli=SLOW_CLI)
    await wait_for(
        lambda: events(slow, "partitions_assigned"), timeout_s=60, what="the slow assignment"
    )
    await asyncio.sleep(4)  # a few restore steps: the restore is half-way
    assert not events(slow, "tasks_restored")
    slow.kill()

    proc = cli_processes.start("process", "normalizer", env=replica)
    expected = distinct_ids(first) | distinct_ids(later)
    out = await read_topic(
        kafka_bootstrap, topic_prefix + OUT, expect=len(expected), quiet_s=3, timeout_s=90
    )
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert sorted(ids) == sorted(expected)
    assert proc.terminate() == 0
    (restored,) = events(proc, "tasks_restored")
    if store == "memory":
        assert restored["restored_records"] >= len(distinct_ids(first))
    else:  # the killed process's restore checkpoints were kept: only the rest replayed
        assert 0 < restored["restored_records"] < total
