"""New tasks restored beside the member's poll loop: their producers started concurrently
(each InitProducerId fences a previous owner before any changelog is read), their stores
caught up with the changelogs from the offsets they already reflect, and each task handed
to the loop as soon as its stores are caught up. Private to the engine.

Nothing here runs in aiokafka's rebalance callback, which only pauses the new partitions
and starts a restoration: aiokafka stops heartbeating while a callback runs, so a restore
longer than the session timeout there would cost the member its place in the group.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from aiokafka import TopicPartition

from processors.engine._restore import ChangelogReader, RebuildReason
from processors.engine._stores import TaskStore
from processors.engine._task import Task
from runtime.logs import get_logger
from runtime.memory import release_memory_soon

if TYPE_CHECKING:
    from processors.engine._member import Member

__all__ = ["Restoration"]

_log = get_logger(__name__)


class Restoration:
    """The member's tasks that are assigned and not yet processing."""

    def __init__(self, member: Member, reader: ChangelogReader) -> None:
        self._member = member
        self._reader = reader
        self._tasks: dict[int, Task | None] = {}
        """Tasks being restored (None: its producer is starting)."""
        self._job: asyncio.Task[None] | None = None
        self._changelog_specs = {member.names.changelog(s.name): s for s in member.processor.stores}
        self.failure: BaseException | None = None
        """Why the last restoration failed; the loop fails the member with it."""

    def partitions(self) -> set[int]:
        return set(self._tasks)

    def start(self, partitions: list[int]) -> None:
        """Restore these new tasks in the background (one restoration at a time: every
        revocation stops the previous one first)."""
        assert self._job is None or self._job.done(), "a restoration is running"
        self._tasks.update(dict.fromkeys(partitions))
        self._job = asyncio.create_task(self._run(partitions))

    def handed_over(self, partition: int) -> None:
        """The member took the restored task over (it processes from now on)."""
        del self._tasks[partition]

    async def _run(self, partitions: list[int]) -> None:
        """Start the new tasks (their producers fence any previous owner), catch their
        stores up with the changelogs, and hand each task to the loop as soon as its stores
        are caught up. Runs beside the loop; a revocation cancels it; a failure is raised
        by the loop (the member fails)."""
        started = caught_up_from = time.monotonic()
        before = self._reader.records
        try:
            await self._start_tasks(partitions)
            caught_up_from = time.monotonic()
            await self._catch_up(partitions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop raises it: the member fails
            _log.exception("restore_failed")
            self.failure = exc
            return
        finally:
            restored = self._reader.records - before
            elapsed = time.monotonic() - started
            catch_up = time.monotonic() - caught_up_from
            self._member.metrics.restored_records.labels(self._member.processor.name).inc(restored)
            self._member.metrics.restore_seconds.labels(self._member.processor.name).observe(
                elapsed
            )
        _log.info(
            "tasks_restored",
            tasks=partitions,
            restored_records=restored,
            restore_s=round(elapsed, 3),
            producers_s=round(elapsed - catch_up, 3),
            catch_up_s=round(catch_up, 3),
            records_per_s=round(restored / catch_up) if catch_up > 0 else None,
        )
        release_memory_soon()  # what the rebalance or the member's restart left behind

    async def _start_tasks(self, partitions: list[int]) -> None:
        """The new tasks' producers initialised concurrently (each InitProducerId fences)."""

        async def start(partition: int) -> None:
            # registered at once: a task whose producer started is dropped by `stop`
            self._tasks[partition] = await self._member.new_task(partition)

        created = await asyncio.gather(*(start(p) for p in partitions), return_exceptions=True)
        for failure in created:
            if isinstance(failure, BaseException):
                raise failure

    async def _catch_up(self, partitions: list[int]) -> None:
        waiting: dict[int, set[TopicPartition]] = {p: set() for p in partitions}
        stores: dict[TopicPartition, TaskStore] = {}
        for p in partitions:
            for name, store in self.task(p).stores.items():
                tp = TopicPartition(self._member.names.changelog(name), p)
                stores[tp] = store
                waiting[p].add(tp)

        positions = await self._member.start_positions(partitions)

        async def caught_up(tp: TopicPartition) -> None:
            waiting[tp.partition].discard(tp)
            if not waiting[tp.partition]:
                await self._member.activate(tp.partition, positions)

        def reset(tp: TopicPartition, reason: RebuildReason) -> TaskStore:
            """A store the changelog does not vouch for (`RebuildReason`): rebuilt from an
            empty one."""
            task = self.task(tp.partition)
            spec = self._changelog_specs[tp.topic]
            task.stores[spec.name].close()
            store = task.stores[spec.name] = self._member.state.new_store(tp.partition, spec)
            self._member.metrics.store_rebuilds.labels(
                self._member.processor.name, spec.name, reason
            ).inc()
            return store

        for p in [p for p, tps in waiting.items() if not tps]:  # stateless tasks
            await self._member.activate(p, positions)
        await self._reader.catch_up(stores, caught_up, reset)

    def task(self, partition: int) -> Task:
        task = self._tasks.get(partition)
        assert task is not None, f"task {partition} is not being restored"
        return task

    async def stop(self) -> None:
        """Cancel the restore in progress; its tasks are dropped, their stores kept (a store
        revoked mid-restore holds a prefix of the committed changelog)."""
        job, self._job = self._job, None
        if job is not None and not job.done():
            job.cancel()
            await asyncio.wait([job])
        restoring = [t for t in self._tasks.values() if t is not None]
        self._tasks.clear()
        await asyncio.gather(*(self._member.drop(task, clean=True) for task in restoring))
