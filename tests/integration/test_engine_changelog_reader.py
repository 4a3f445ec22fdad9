"""The engine's `ChangelogReader` against the real broker, one changelog partition at a
time: its check of a kept store's last commit (`processors/engine/_restore.py`), seen as
whether it trusts or rebuilds a store whose checkpoint claims a transaction's records. The
transactions are written by a transactional producer and committed or aborted at the broker.

Without the check (the reader catching up from the checkpoint as before) the two aborted
cases fail (nothing is rebuilt, the store keeps the aborted writes) and so does the
committed one (its commit stays unconfirmed); confirming from the commit's last record
only, instead of its first, fails the compaction case (the store is rebuilt).

And a reader stopped right after a catch-up stops: with the caught-up partitions unassigned
instead of paused, `stop` hung in each of 4 runs (aiokafka's fetch routine swallowed its
cancellation), 0 of 4 with them paused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from processors.engine._restore import ChangelogReader, RebuildReason
from processors.engine._stores import MemoryStore, TaskStore
from processors.engine.api import StoreSpec
from runtime.kafka import admin_client, producer_config
from runtime.topics import durability_configs
from tests.support.processes import wait_for
from tests.support.topics import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SPEC = StoreSpec("s")


async def _changelog(bootstrap: str, name: str, **configs: str) -> TopicPartition:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        settings = {"cleanup.policy": "compact", **durability_configs(1), **configs}
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=settings)])
    finally:
        await admin.close()
    return TopicPartition(name, 0)


class Writer:
    """Writes transactions to one changelog partition, as a task's producer does
    (`async with`: its producer started and stopped)."""

    def __init__(self, bootstrap: str, tp: TopicPartition) -> None:
        self.tp = tp
        tid = f"confirm-{uuid.uuid4().hex[:8]}"
        self.producer = AIOKafkaProducer(**producer_config(bootstrap, transactional_id=tid))

    async def __aenter__(self) -> Writer:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def transaction(self, keys: Sequence[str], value: int, *, commit: bool) -> list[int]:
        """One transaction writing `keys`; their offsets."""
        await self.producer.begin_transaction()
        sent = [
            await self.producer.send(
                self.tp.topic, orjson.dumps([0, value]), key=k.encode(), partition=0
            )
            for k in keys
        ]
        offsets = [(await f).offset for f in sent]
        if commit:
            await self.producer.commit_transaction()
        else:
            await self.producer.abort_transaction()
        return offsets


@pytest.fixture
async def writer(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Writer]:
    """A writer on a new changelog partition."""
    tp = await _changelog(kafka_bootstrap, topic_prefix + "changelog")
    async with Writer(kafka_bootstrap, tp) as opened:
        yield opened


def _kept(keys: Sequence[str], value: int, offsets: list[int]) -> MemoryStore:
    """A store as the engine leaves it after committing `keys` at `offsets` (its last
    commit): the values, the checkpoint after them, unconfirmed from the first."""
    store = MemoryStore(SPEC)
    for key in keys:
        store.set(key, value)
    store.end_record(ok=True)
    store.committed(store.changelog_batch(), offsets[-1] + 1, offsets[0])
    return store


async def _catch_up(bootstrap: str, tp: TopicPartition, store: TaskStore) -> Restored:
    restored = Restored(store)
    reader = ChangelogReader(bootstrap, f"confirm-{uuid.uuid4().hex[:8]}")
    await reader.start()
    try:

        async def caught_up(tp: TopicPartition) -> None:
            restored.caught_up = True

        await reader.catch_up({tp: store}, caught_up, restored.reset)
    finally:
        await reader.stop()
    restored.records = reader.records
    return restored


class Restored:
    """What a catch-up did: the store it ended with, its rebuilds, the records it read."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.rebuilds: list[RebuildReason] = []
        self.records = 0
        self.caught_up = False

    def reset(self, tp: TopicPartition, reason: RebuildReason) -> TaskStore:
        self.rebuilds.append(reason)
        self.store = MemoryStore(SPEC)
        return self.store

    def state(self) -> dict[str, object]:
        return dict(self.store.items())


async def test_a_committed_last_commit_is_confirmed_and_nothing_is_replayed(
    kafka_bootstrap: str, writer: Writer
) -> None:
    await writer.transaction(["a", "b"], 1, commit=True)
    offsets = await writer.transaction(["c", "d"], 2, commit=True)
    store = _kept(["c", "d"], 2, offsets)
    restored = await _catch_up(kafka_bootstrap, writer.tp, store)
    assert restored.rebuilds == []
    assert restored.store is store
    assert restored.records == 0  # the commit's records were read, not applied again
    assert restored.caught_up
    assert store.unconfirmed_from is None  # confirmed: not checked again
    assert store.changelog_offset == offsets[-1] + 2  # past the commit marker


async def test_an_aborted_last_commit_rebuilds_the_store_from_the_changelog(
    kafka_bootstrap: str, writer: Writer
) -> None:
    """The soak's case: the store holds a transaction Kafka aborted, and the producer
    committed another one after it; the rebuilt store holds the committed ones only."""
    await writer.transaction(["a"], 1, commit=True)
    offsets = await writer.transaction(["lost-1", "lost-2"], 2, commit=False)
    await writer.transaction(["b"], 3, commit=True)
    store = _kept(["lost-1", "lost-2"], 2, offsets)
    restored = await _catch_up(kafka_bootstrap, writer.tp, store)
    assert restored.rebuilds == ["unconfirmed"]
    assert restored.state() == {"a": 1, "b": 3}
    assert restored.caught_up


async def test_an_aborted_commit_at_the_end_of_the_changelog_rebuilds_the_store(
    kafka_bootstrap: str, writer: Writer
) -> None:
    """Nothing after the aborted transaction but its ABORT marker."""
    await writer.transaction(["a"], 1, commit=True)
    offsets = await writer.transaction(["lost"], 2, commit=False)
    restored = await _catch_up(kafka_bootstrap, writer.tp, _kept(["lost"], 2, offsets))
    assert restored.rebuilds == ["unconfirmed"]
    assert restored.state() == {"a": 1}


async def test_a_commit_whose_last_record_was_compacted_away_is_still_confirmed(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Compaction removed the commit's last record (another owner wrote its key again):
    the commit's first record still confirms it, so the kept store catches up instead of
    being rebuilt. The changelog is created so that the broker's cleaner runs within
    seconds (tiny segments by time, any dirty ratio)."""
    tp = await _changelog(
        kafka_bootstrap,
        topic_prefix + "changelog",
        **{
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "max.compaction.lag.ms": "100",
        },
    )
    async with Writer(kafka_bootstrap, tp) as writer:
        offsets = await writer.transaction(["kept", "rewritten"], 1, commit=True)
        await writer.transaction(["rewritten"], 2, commit=True)  # the next owner's write
        fills = 0

        async def compacted() -> bool:
            nonlocal fills
            fills += 1  # rolls segments: the cleaner skips the active one
            await writer.transaction([f"fill-{fills}"], 0, commit=True)
            records = await read_topic(kafka_bootstrap, tp.topic, quiet_s=0.2)
            return offsets[-1] not in {r.offset for r in records}

        await wait_for(compacted, timeout_s=180, interval_s=0.5, what="the last record compacted")
    restored = await _catch_up(kafka_bootstrap, writer.tp, _kept(["kept", "rewritten"], 1, offsets))
    assert restored.rebuilds == []
    state = restored.state()
    assert (state["kept"], state["rewritten"]) == (1, 2)
    assert restored.records == 1 + fills  # the tail only: the rewrite and the fills


async def test_a_reader_stopped_right_after_a_catch_up_stops(
    kafka_bootstrap: str, writer: Writer
) -> None:
    """The catch-up ends on a commit marker (a fetch in flight at the partition's end), and
    the reader is stopped at once, as a member that closes right after a restore does."""
    offsets = await writer.transaction(["a"], 1, commit=True)
    store = MemoryStore(SPEC)
    store.restore_batch([(b"a", orjson.dumps([0, 1]))], offsets[-1] + 1)  # before the marker
    reader = ChangelogReader(kafka_bootstrap, f"confirm-{uuid.uuid4().hex[:8]}")
    await reader.start()
    restored = Restored(store)

    async def caught_up(tp: TopicPartition) -> None:
        restored.caught_up = True

    await reader.catch_up({writer.tp: store}, caught_up, restored.reset)
    stopping = asyncio.ensure_future(reader.stop())
    done, _ = await asyncio.wait([stopping], timeout=20)
    assert done, "ChangelogReader.stop() hung"
    assert restored.caught_up
    assert restored.rebuilds == []
    assert store.changelog_offset == offsets[-1] + 2
