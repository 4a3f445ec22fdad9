"""Restoring state beside the poll loop, not in the rebalance callback: a member whose
restore takes several session timeouts keeps its place in the group, and a member that
restores a large state does not hold up the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from processors.engine import Processor, StoreSpec, run_engine
from processors.engine._member import Member
from processors.engine._restore import ChangelogReader, RebuildReason
from processors.engine._stores import TaskStore
from runtime.settings import ProcessorSettings
from tests.support.engine import forward_once
from tests.support.processes import wait_for
from tests.support.topics import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

IN = "raw.yuju.message.v1"  # 6 partitions; the test processor forwards raw values
OUT = "chat.message.v2"
SESSION_MS = 6000  # the broker's group.min.session.timeout.ms


PROCESSOR = Processor("normalizer", (IN,), (OUT,), forward_once, (StoreSpec("seen"),))


def _settings(bootstrap: str, prefix: str) -> ProcessorSettings:
    return ProcessorSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        metrics_port=0,
        session_timeout_ms=SESSION_MS,
    )


@contextlib.asynccontextmanager
async def _engine(
    bootstrap: str, prefix: str, instance: int = 0
) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_engine(PROCESSOR, _settings(bootstrap, prefix), bootstrap, stop, instance=instance)
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 90)


def _slow_restore(
    monkeypatch: pytest.MonkeyPatch, delay_s: float, *, only_instance: int | None = None
) -> list[float]:
    """Every restore (of `only_instance`'s members) first waits `delay_s`, as a large
    changelog would; returns the list of restore start times."""
    original = ChangelogReader.catch_up
    started: list[float] = []

    async def slow(
        self: ChangelogReader,
        stores: Mapping[TopicPartition, TaskStore],
        caught_up: Callable[[TopicPartition], Awaitable[None]],
        reset: Callable[[TopicPartition, RebuildReason], TaskStore],
    ) -> None:
        if only_instance is None or self.client_id.endswith(f"-{only_instance}-restore"):
            started.append(time.monotonic())
            await asyncio.sleep(delay_s)
        await original(self, stores, caught_up, reset)

    monkeypatch.setattr(ChangelogReader, "catch_up", slow)
    return started


def _count_assignments(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Assignments received per instance."""
    original = Member.on_assigned
    counts: dict[int, int] = {}

    async def counted(self: Member, assigned: set[TopicPartition]) -> None:
        counts[self.health.instance] = counts.get(self.health.instance, 0) + 1
        await original(self, assigned)

    monkeypatch.setattr(Member, "on_assigned", counted)
    return counts


async def _produce(producer: AIOKafkaProducer, topic: str, values: list[str]) -> None:
    futures = [await producer.send(topic, v.encode(), key=v.encode()) for v in values]
    await asyncio.gather(*futures)


def _values(out: list[Any]) -> list[str]:
    return [(r.value or b"").decode() for r in out]


async def test_a_restore_longer_than_three_session_timeouts_keeps_the_member(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = [f"a{i}" for i in range(300)]
    await _produce(producer, topic_prefix + IN, first)
    async with _engine(kafka_bootstrap, topic_prefix):
        await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=300, quiet_s=0.5)

    # A new process: no local state, so every task restores; each restore takes 3.5 session
    # timeouts. Retries of the first values and new ones wait on the paused partitions.
    counts = _count_assignments(monkeypatch)
    started = _slow_restore(monkeypatch, 3.5 * SESSION_MS / 1000)
    later = [f"b{i}" for i in range(200)]
    caplog.set_level(logging.WARNING, logger="aiokafka")
    async with _engine(kafka_bootstrap, topic_prefix):
        await _produce(producer, topic_prefix + IN, first[::3] + later)
        out = await read_topic(
            kafka_bootstrap, topic_prefix + OUT, expect=500, quiet_s=3, timeout_s=90
        )
        assert time.monotonic() - started[0] >= 3.5 * SESSION_MS / 1000
    assert sorted(_values(out)) == sorted(first + later)  # each exactly once
    assert counts == {0: 1}, "one assignment: the member never left the group"
    assert len(started) == 1
    group_errors = [
        r.getMessage()
        for r in caplog.records
        if "not recognized" in r.getMessage() or "Heartbeat session expired" in r.getMessage()
    ]
    assert group_errors == []


async def test_members_keep_processing_while_a_new_member_restores(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = [f"a{i}" for i in range(600)]
    await _produce(producer, topic_prefix + IN, first)
    counts = _count_assignments(monkeypatch)
    started = _slow_restore(monkeypatch, 25.0, only_instance=1)
    async with _engine(kafka_bootstrap, topic_prefix, instance=0):
        await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=600, quiet_s=0.5)
        async with _engine(kafka_bootstrap, topic_prefix, instance=1):
            await wait_for(lambda: started, timeout_s=30, what="instance 1 restoring")
            # Instance 1 restores for 25 s; instance 0 got its tasks back at once (kept
            # state: nothing to replay) and processes their records meanwhile.
            tag = uuid.uuid4().hex[:6]
            later = [f"{tag}-{i}" for i in range(600)]
            sent = time.monotonic()
            await _produce(producer, topic_prefix + IN, later)

            async def some_processed() -> bool:
                out = await read_topic(kafka_bootstrap, topic_prefix + OUT, quiet_s=0.3)
                return len(out) > 600

            await wait_for(some_processed, timeout_s=20, what="instance 0 processing")
            during = time.monotonic() - sent
            restoring_until = started[0] + 25.0
            assert time.monotonic() < restoring_until, f"instance 0 took {during:.1f}s"
            out = await read_topic(
                kafka_bootstrap, topic_prefix + OUT, expect=1200, quiet_s=2, timeout_s=90
            )
    assert sorted(_values(out)) == sorted(first + later)
    assert counts[1] == 1
