"""Kill -9 the normalizer at random moments while it works through 50k messages (10 %
platform retries), restart it each time; at the end `chat.message.v2` (read_committed) holds
every distinct message exactly once, in order per conversation."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.chat import ChatMessage
from tests.support.processes import wait_for
from tests.support.topics import committed_total, read_topic
from tests.support.yuju_messages import produce_messages, raw_messages

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"
TOTAL = 50_000
KILLS = 6


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    rng = random.Random(2026)
    messages = list(raw_messages(TOTAL, conversations=300, seed=5))
    expected: dict[str, list[str]] = {}
    seen: set[str] = set()
    for m in messages:
        if m.message_id not in seen:
            seen.add(m.message_id)
            expected.setdefault(m.chat_id, []).append(m.message_id)
    await produce_messages(producer, topic_prefix + RAW, messages)

    group = f"{topic_prefix}wecom-stream.normalizer.v2"  # state version 2
    # a short session: a killed member's partitions are reassigned after 6 s, not 10 s
    env = {"WECOM_STREAM_METRICS_PORT": "0", "WECOM_STREAM_SESSION_TIMEOUT_MS": "6000"}
    progress = [0]
    for _ in range(KILLS):
        proc = cli_processes.start("process", "normalizer", env=env)

        # Kill only while working, at a random point: after this life committed a random
        # number of inputs, plus a random instant. The number, not a delay, bounds how far
        # each life gets, so input remains for the next kill however fast this run is.
        goal = progress[-1] + rng.randrange(500, TOTAL // (2 * KILLS))

        async def advanced(t: int = goal) -> int | None:
            done = await committed_total(kafka_bootstrap, group)
            return done if done >= t else None

        await wait_for(advanced, timeout_s=90, interval_s=0.05, what=f"{goal} committed")
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        progress.append(await committed_total(kafka_bootstrap, group))
    assert progress == sorted(progress)
    assert progress[-1] < TOTAL, f"all input was done before the last kill: {progress}"

    final = cli_processes.start("process", "normalizer", env=env)  # runs to the end
    out = await read_topic(
        kafka_bootstrap, topic_prefix + OUT, expect=len(seen), quiet_s=3, timeout_s=180
    )
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert len(ids) == len(set(ids)), "a message was published twice"
    assert set(ids) == seen, "a message was lost"
    got: dict[str, list[str]] = {}
    for r in out:
        msg = ChatMessage.model_validate_json(r.value or b"")
        got.setdefault(msg.conversation_id, []).append(msg.message_id)
    assert got == expected
    await wait_for(
        lambda: committed_total(kafka_bootstrap, group),
        timeout_s=30,
        what="offsets committed",
    )
    assert final.terminate() == 0
    assert await committed_total(kafka_bootstrap, group) == TOTAL
