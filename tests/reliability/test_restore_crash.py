"""A processor SIGKILLed while it restores its state: its producers had already fenced the
previous owner, nothing was processed; the next owner restores and processes every message
exactly once."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.chat import ChatMessage
from tests.integration.test_engine_kafka import distinct_ids, events
from tests.support.processes import wait_for
from tests.support.topics import read_topic
from tests.support.yuju_messages import produce_messages, raw_messages

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v1"
SLOW_CLI = [sys.executable, "-m", "tests.support.slow_restore"]


async def test_sigkill_during_restore_then_the_next_owner_processes_exactly_once(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    env = {"WECOM_STREAM_METRICS_PORT": "0", "WECOM_STREAM_SESSION_TIMEOUT_MS": "6000"}
    first = list(raw_messages(600, conversations=20, duplicate_ratio=0.1, prefix="a", seed=5))
    await produce_messages(producer, topic_prefix + RAW, first)
    proc = cli_processes.start("process", "normalizer", env=env)
    await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=len(distinct_ids(first)))
    assert proc.terminate() == 0

    # New messages and retries of old ones arrive while a new process restores; it is
    # killed in the middle of that restore.
    later = list(raw_messages(300, conversations=20, duplicate_ratio=0, prefix="b", seed=6))
    await produce_messages(producer, topic_prefix + RAW, first[::5] + later)
    slow = cli_processes.start(
        "process", "normalizer", env={**env, "SLOW_RESTORE_S": "60"}, cli=SLOW_CLI
    )
    await wait_for(
        lambda: events(slow, "partitions assigned"), timeout_s=60, what="the slow assignment"
    )
    assert not events(slow, "tasks restored")
    slow.kill()

    proc = cli_processes.start("process", "normalizer", env=env)
    expected = distinct_ids(first) | distinct_ids(later)
    out = await read_topic(
        kafka_bootstrap, topic_prefix + OUT, expect=len(expected), quiet_s=3, timeout_s=90
    )
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert sorted(ids) == sorted(expected)
    assert proc.terminate() == 0
    (restored,) = events(proc, "tasks restored")
    assert restored["restored_records"] >= len(distinct_ids(first))
