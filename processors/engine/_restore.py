"""Catch stores up with their changelog partitions: read each from the offset the store
already reflects (`TaskStore.changelog_offset`: 0 for a new store, the checkpoint of a
local one) to the partition's last stable offset with `read_committed`. Private to the
engine.

The reader runs in the member's own loop, never in a rebalance callback, so the group
consumer keeps polling and heartbeating while a large state restores (see "State stores"
in `processors.engine`). One reader per member, reused for every assignment.

A local store is trusted only as far as the committed changelog confirms it
    A store kept across a rebalance or reopened from disk holds its own last commit: the
    writes of a transaction Kafka reported committed (`TaskStore.committed`). Kafka has
    been seen to undo one (docs/faults.md, finding 2: a broker restart lost the commit
    markers, and the producer's next ABORT covered the transaction); the store then says
    "seen" for inputs whose outputs never became visible, and those inputs are re-read
    from the rolled-back offsets and produce nothing. So before catching such a store up,
    the reader confirms that commit: its changelog records are [`unconfirmed_from`,
    `changelog_offset`) and nothing else (one producer writes a task's changelog
    partition, and a transaction's records on it are all committed or all aborted), so
    the read starts at `unconfirmed_from`, and
    - the first record returned lies before `changelog_offset`: committed. Those records
      are skipped (the store holds them) and the catch-up goes on from the checkpoint in
      the same read; a clean restart costs that one fetch and nothing more;
    - it lies at or after `changelog_offset`, or the read passes `changelog_offset`
      without a record: none of the commit's records is committed. The store is rebuilt
      from the beginning of the changelog (`local_state_unconfirmed_rebuilding`), as
      Kafka Streams wipes a store it cannot vouch for under exactly-once.
    The second case also covers a commit whose every record compaction has removed since
    (each key written again after it, and cleaned): the read cannot tell that from an
    abort, so it rebuilds, which is sound and only costs a full restore. It needs every
    key of the commit written again by a later owner while the store was away, or the
    commit's records all tombstones older than `delete.retention.ms` (a store away that
    long is usually rebuilt as stale first: `_state.py`). Confirming from the commit's
    first record, not only its last, keeps that rare. A confirmed store, like
    any store caught up, checkpoints with nothing unconfirmed, so the check runs once per
    commit, not on every assignment.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.engine._clock import wall_ms
from processors.engine._setup import EngineError
from processors.engine._stores import TaskStore
from runtime.kafka import consumer_config
from runtime.logs import get_logger

__all__ = ["ChangelogReader", "RebuildReason"]

RebuildReason = Literal["ahead", "unconfirmed"]
"""Why a local store is rebuilt: its checkpoint is beyond the changelog's end (the topic was
recreated), or its last commit is not in the committed changelog (module docstring)."""
_REBUILDING: dict[RebuildReason, str] = {
    "ahead": "local_state_ahead_rebuilding",
    "unconfirmed": "local_state_unconfirmed_rebuilding",
}
"""The warning logged for each reason."""

_log = get_logger(__name__)
_NO_PROGRESS_TIMEOUT_S = 120.0
_MAX_RECORDS = 10_000
"""Records applied per step: a step is CPU work between two awaits, so it is kept well
under the heartbeat interval (10,000 records: ~10-40 ms)."""
_STEP_PAUSE_S = 0.0
"""A pause after each step: 0 (a plain yield); crash tests raise it to catch a restore
half-way (`tests/support/slow_restore.py`)."""


class ChangelogReader:
    """A group-less `read_committed` consumer that replays changelog partitions."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.client_id = client_id
        self._consumer = AIOKafkaConsumer(
            **consumer_config(
                bootstrap,
                None,
                isolation_level="read_committed",
                fetch_max_bytes=16 * 1024 * 1024,
                client_id=client_id,
            )
        )
        self.records = 0
        """Changelog records applied so far (all restores of this reader)."""

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def catch_up(
        self,
        stores: Mapping[TopicPartition, TaskStore],
        caught_up: Callable[[TopicPartition], Awaitable[None]],
        reset: Callable[[TopicPartition, RebuildReason], TaskStore],
    ) -> None:
        """Replay each changelog partition into its store, from the store's offset to the
        last stable offset as of now; `caught_up(tp)` is awaited as each one gets there.

        The caller has already initialised the task's transactional producer, which
        completed or aborted any transaction a previous owner left open, so the last stable
        offset is the true end of the committed state. A store that claims an offset beyond
        the end (the changelog was deleted and recreated), or whose last commit is not in
        the committed changelog (module docstring), is replaced by `reset(tp, reason)`, an
        empty store, and restored from the beginning.
        """
        stores = dict(stores)
        if not stores:
            return
        consumer = self._consumer
        consumer.assign(list(stores))
        collecting = gc.isenabled()
        gc.disable()  # a memory store's millions of new tuples would trigger full collections
        try:
            await self._replay(stores, caught_up, reset)
        finally:
            if collecting:
                gc.enable()
            # no prefetching of partitions that are caught up. Paused, not unassigned: an
            # emptied assignment makes aiokafka's fetch routine cancel its fetch in flight and
            # await it with CancelledError suppressed, so a `stop` in that moment had its own
            # cancellation swallowed and hung (a member closed right after a restore).
            consumer.pause(*consumer.assignment())

    async def _replay(
        self,
        stores: dict[TopicPartition, TaskStore],
        caught_up: Callable[[TopicPartition], Awaitable[None]],
        reset: Callable[[TopicPartition, RebuildReason], TaskStore],
    ) -> None:
        consumer = self._consumer
        tps = list(stores)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        confirming: dict[TopicPartition, int] = {}
        """Changelog partition -> the checkpoint whose last commit is not confirmed yet."""

        def rebuild(tp: TopicPartition, reason: RebuildReason, **facts: int | None) -> None:
            offset = stores[tp].changelog_offset
            _log.warning(
                _REBUILDING[reason],
                changelog=tp.topic,
                partition=tp.partition,
                local_offset=offset,
                changelog_end=ends[tp],
                **facts,
            )
            stores[tp] = reset(tp, reason)
            confirming.pop(tp, None)
            consumer.seek(tp, starts[tp])

        for tp in tps:
            store = stores[tp]
            offset, unconfirmed = store.changelog_offset, store.unconfirmed_from
            if offset > ends[tp]:
                rebuild(tp, "ahead")
            elif unconfirmed is not None and unconfirmed < offset:
                confirming[tp] = offset
                consumer.seek(tp, max(unconfirmed, starts[tp]))
            else:
                consumer.seek(tp, max(offset, starts[tp]))
        remaining = set()
        for tp in tps:
            if tp not in confirming and await consumer.position(tp) >= ends[tp]:
                stores[tp].mark_synced(wall_ms())
                await caught_up(tp)
            else:
                remaining.add(tp)
        last_progress = time.monotonic()
        while remaining:
            # a short wait: a partition whose tail is a commit marker gives no record, and its
            # position passes the marker as soon as the fetch is answered
            batch = await consumer.getmany(*remaining, timeout_ms=50, max_records=_MAX_RECORDS)
            for tp, records in batch.items():
                if tp in confirming and records:
                    checkpoint = confirming.pop(tp)
                    if records[0].offset >= checkpoint:  # nothing of the commit is committed
                        rebuild(tp, "unconfirmed", first_committed=records[0].offset)
                        continue
                    stores[tp].restore_batch((), checkpoint)  # confirmed
                    records = [r for r in records if r.offset >= checkpoint]
                if not records:
                    continue
                stores[tp].restore_batch(
                    [(rec.key, rec.value) for rec in records], records[-1].offset + 1
                )
                self.records += len(records)
            if batch:
                last_progress = time.monotonic()
            for tp in list(confirming):  # no record yet: past the checkpoint, none will come
                if await consumer.position(tp) >= confirming[tp]:
                    rebuild(tp, "unconfirmed", first_committed=None)
            for tp in list(remaining):
                position = await consumer.position(tp)
                if tp not in confirming and position >= ends[tp]:
                    remaining.discard(tp)
                    store = stores[tp]
                    if store.changelog_offset < position:  # control records at the end
                        store.restore_batch((), position)
                    store.mark_synced(wall_ms())
                    await caught_up(tp)
            if remaining and time.monotonic() - last_progress > _NO_PROGRESS_TIMEOUT_S:
                raise EngineError(
                    f"restoring {sorted(str(tp) for tp in remaining)} made no progress for "
                    f"{_NO_PROGRESS_TIMEOUT_S:.0f}s; check the broker and the changelog topics"
                )
            await asyncio.sleep(_STEP_PAUSE_S)  # the group consumer's tasks run between steps
