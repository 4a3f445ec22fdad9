"""The commit protocol, for both guarantees: what a commit is, when the member commits
(`Committer.commit`: once per commit interval, and forced on revocation and shutdown), and
what a crash between any two steps leaves behind. Private to the engine; the aiokafka
constraints behind the order are in the `processors.engine` docstring.

What a task holds between two commits: the outputs and dead letters it has sent (handed to
the producer after each fetched batch, `Task.send_outputs`) or still holds in open batches,
its stores' staged writes and dirty keys, the offsets after its last records, and its
counters. A commit makes all of them durable, in this order.

Exactly-once (every dirty task concurrently, each in its own transaction; then the next)
    1. expire the stores' old entries (staged deletes, with tombstones);
    2. send the changelog: each dirty key's latest value to the task's partition of its
       store's changelog, inside the transaction;
    3. send the outputs' open batches;
    4. await every send (outputs, dead letters, changelog): acknowledged, not yet visible
       to `read_committed` readers;
    5. `send_offsets_to_transaction`: the input offsets, once, into the transaction;
    6. `commit_transaction`: outputs, changelog and offsets become visible together;
    7. checkpoint the stores: each applies its committed entries at the changelog offset
       after them (`ChangelogWrite.apply`; a disk store in one atomic write), the commit
       unconfirmed until a restore reads it back (`_restore.py`);
    8. count the task's records; once every task committed, begin each one's next
       transaction; report the commit, the lag and the store sizes.
    A failure at any step fails the member (`MemberFailedError`): it closes without
    committing (open transactions aborted best-effort) and a fresh member restores.

    If the process dies (a memory store dies with it and is restored from the changelog;
    a disk store is reopened at its checkpoint and caught up from there)
    - before the coordinator has decided 6: the transaction stays open; the next owner's
      InitProducerId (or the 60 s transaction timeout) aborts it. Its records are never
      visible; the committed offsets, the changelog and the local checkpoint are all the
      previous commit's: the next owner reprocesses the same inputs from the same state.
      Nothing is lost or duplicated.
    - after that, before 7: Kafka holds the commit, the local store the one before it.
      The next owner reads the offsets stably (`_offsets.py`: it waits for the markers)
      and catches the store up from its checkpoint, reading this commit's changelog.
    - between 7 and 8: only the commit's counters are lost (metrics).
    If Kafka undoes a commit it reported (docs/faults.md, finding 2), the store's
    checkpoint is ahead of the committed changelog; the restore finds its unconfirmed
    commit missing and rebuilds the store (`_restore.py`).

At-least-once (one idempotent producer; a commit is sealed in line and finished in the
background while the next records are processed; one in flight: the next commit, and any
forced one, waits for it first)
    In line, each dirty task in turn (`_seal`):
    1. send the outputs' open batches and take the sends so far out of the task;
    2. expire the stores' old entries;
    3. take the changelog entries (each dirty key's latest value), the offsets and the
       counters out of the task, which goes on processing.
    In the background (`Committer._finish_at_least_once`):
    4. await the sealed outputs (acknowledged);
    5. send the changelog entries, only now: a store never remembers a record whose
       output was lost;
    6. commit the offsets (`consumer.commit`) while awaiting the changelog sends;
    7. checkpoint the stores (as exactly-once 7);
    8. count the records; report the commit, the lag and the store sizes.
    A failure fails the member at its next commit (or at once when forced).

    If the process dies
    - before 5: the offsets and the changelog are the previous commit's: the inputs are
      processed again, and outputs already acknowledged are written again (duplicates,
      which this mode allows); nothing is lost.
    - from 5 until 6 is done: either may be written without the other. Offsets without
      the changelog: the store forgets the entries (a deduplicating processor may emit a
      later retry again: a duplicate). The changelog without the offsets: the inputs are
      processed again by a store that remembers them, and their outputs were
      acknowledged in 4, so nothing is lost.
    - between 6 and 7, or 7 and 8: as exactly-once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from processors.engine._changelog import ChangelogWrite, send_changelog
from processors.engine._context import MemberContext, MemberFailedError
from processors.engine._stores import ChangelogEntry, TaskStore
from processors.engine._task import RecordCounts, Task

__all__ = ["Committer"]

_COMMIT_TIMEOUT_S = 60.0


class _Sealed(NamedTuple):
    """An at-least-once commit taken out of a task (`_seal`)."""

    outputs: list[asyncio.Future[Any]]
    changelog: list[tuple[TaskStore, list[ChangelogEntry]]]
    offsets: dict[TopicPartition, int]
    counts: RecordCounts


class Committer:
    """The member's commits: `commit` in the loop, on revocation and on shutdown;
    `abandon` when the member closes after a failure."""

    def __init__(self, context: MemberContext, *, exactly_once: bool, interval_ms: int) -> None:
        self._ctx = context
        self._exactly_once = exactly_once
        self._interval_s = interval_ms / 1000
        self._name = context.processor.name
        self._last_commit = time.monotonic()
        self._background: asyncio.Future[None] | None = None
        """The at-least-once commit finishing while the next records are processed."""

    async def commit(self, *, force: bool = False) -> None:
        """Commit every task with records since its last commit, once per commit interval
        (`force`: now, and the at-least-once commit in flight finished first). Called under
        the member's lock."""
        background = self._background
        if background is not None and (force or background.done()):
            await self._settle_background()  # raises its failure
        if not force and time.monotonic() - self._last_commit < self._interval_s:
            return
        dirty = [t for t in self._ctx.tasks.values() if t.dirty]
        self._last_commit = time.monotonic()
        if not dirty:
            return
        if not self._exactly_once:
            await self._commit_at_least_once(dirty, force=force)
            return
        started = time.monotonic()
        group = self._ctx.names.group
        try:
            await asyncio.gather(*(_commit_transaction(t, group) for t in dirty))
            await asyncio.gather(*(t.begin() for t in dirty))
        except Exception as exc:
            self._ctx.metrics.commits.labels(self._name, "failed").inc()
            raise MemberFailedError(f"commit failed: {exc!r}") from exc
        self._committed(dirty, started)

    async def abandon(self) -> None:
        """The member closes after a failure: the at-least-once commit in flight, if any,
        is cancelled (not needed now; its failure was the one being handled)."""
        background, self._background = self._background, None
        if background is not None:
            background.cancel()
            await asyncio.wait([background])
            if not background.cancelled():
                background.exception()  # retrieved: it was the failure being handled

    # ---------------------------------------------------------------- at-least-once
    async def _commit_at_least_once(self, dirty: list[Task], *, force: bool) -> None:
        """Seal the tasks' commits in line, finish them in the background (one in flight;
        the next seal waits for it)."""
        await self._settle_background()
        try:
            sealed = [(t, await _seal(t)) for t in dirty]
        except Exception as exc:
            self._ctx.metrics.commits.labels(self._name, "failed").inc()
            raise MemberFailedError(f"commit failed: {exc!r}") from exc
        finish = self._finish_at_least_once(sealed)
        if force:
            await finish
        else:
            self._background = asyncio.ensure_future(finish)

    async def _finish_at_least_once(self, sealed: list[tuple[Task, _Sealed]]) -> None:
        started = time.monotonic()
        try:
            changelog = await asyncio.gather(*(_send_sealed(t, s) for t, s in sealed))
            offsets = {tp: off for _, s in sealed for tp, off in s.offsets.items()}
            await asyncio.gather(
                self._ctx.consumer.commit(offsets),
                *(f for writes in changelog for w in writes for f, _ in w.sent),
            )
        except Exception as exc:
            self._ctx.metrics.commits.labels(self._name, "failed").inc()
            raise MemberFailedError(f"commit failed: {exc!r}") from exc
        for writes in changelog:
            for write in writes:
                write.apply()
        for task, s in sealed:
            task.count(s.counts)
        self._committed([t for t, _ in sealed], started)

    async def _settle_background(self) -> None:
        """Wait for the at-least-once commit in flight, if any; its failure is raised."""
        background, self._background = self._background, None
        if background is not None:
            await background

    # ---------------------------------------------------------------- reporting
    def _committed(self, tasks: list[Task], started: float) -> None:
        """The commit succeeded: counted and timed; the committed tasks' lag and every
        task's store sizes reported."""
        metrics, name = self._ctx.metrics, self._name
        metrics.commits.labels(name, "ok").inc()
        metrics.commit_seconds.labels(name).observe(time.monotonic() - started)
        consumer, names = self._ctx.consumer, self._ctx.names
        for task in tasks:
            for tp, committed in task.offsets.items():
                end = consumer.last_stable_offset(tp) or consumer.highwater(tp)
                if end is not None:
                    metrics.lag.labels(name, names.logical(tp.topic), tp.partition).set(
                        max(0, end - committed)
                    )
        totals: dict[str, int] = {}
        for task in self._ctx.tasks.values():
            for store, size in task.store_sizes().items():
                totals[store] = totals.get(store, 0) + size
        for store, size in totals.items():
            metrics.store_entries.labels(name, store).set(size)


# -------------------------------------------------------------------- one task's part
async def _commit_transaction(task: Task, group: str) -> None:
    """Exactly-once steps 1-8 for one task (module docstring). Never two transactional
    calls in flight on its producer: every send acknowledged, then one
    `send_offsets_to_transaction`, then `commit_transaction`."""
    if not task.dirty:
        return
    async with asyncio.timeout(_COMMIT_TIMEOUT_S):
        task.expire()
        writes = await _send_changelog(task, task.changelog_entries())
        task.sends.extend(f for w in writes for f, _ in w.sent)
        await task.send_outputs()
        sends = task.take_sends()
        if sends:
            await asyncio.gather(*sends)
        offsets = {tp: OffsetAndMetadata(off, "") for tp, off in task.offsets.items()}
        await task.producer.send_offsets_to_transaction(offsets, group)
        await task.producer.commit_transaction()
    task.in_transaction = False
    for write in writes:
        write.apply()
    task.committed()


async def _seal(task: Task) -> _Sealed:
    """At-least-once steps 1-3 for one task: its open output batches handed to the
    producer, and the sends so far, the changelog entries (the store values as of now),
    the offsets and the counters taken out of the task."""
    await task.send_outputs()
    outputs = task.take_sends()
    task.expire()
    return _Sealed(outputs, task.changelog_entries(), dict(task.offsets), task.take_counts())


async def _send_sealed(task: Task, sealed: _Sealed) -> list[ChangelogWrite]:
    """At-least-once steps 4-5 for one task: await the sealed outputs, then send the sealed
    changelog entries; the writes, to await along with the offset commit, then `apply`."""
    if sealed.outputs:
        await asyncio.gather(*sealed.outputs)
    return await _send_changelog(task, sealed.changelog)


async def _send_changelog(
    task: Task, changelog: list[tuple[TaskStore, list[ChangelogEntry]]]
) -> list[ChangelogWrite]:
    """Each store's entries to the task's partition of its changelog (exactly-once: inside
    the open transaction)."""
    return await send_changelog(
        task.producer, task.names, task.partition, changelog, transactional=task.transactional
    )
