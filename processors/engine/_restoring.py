"""New tasks restored beside the member's poll loop: their producers started concurrently
(each InitProducerId fences a previous owner before any changelog is read), their stores
caught up with the changelogs from the offsets they already reflect, their inputs positioned
at the committed offsets, and each task handed to the loop as soon as its stores are caught
up. The member's consumer, tasks and metrics are reached through its `MemberContext`
(`_context.py`). Private to the engine.

Nothing here runs in aiokafka's rebalance callback, which only pauses the new partitions
and starts a restoration: aiokafka stops heartbeating while a callback runs, so a restore
longer than the session timeout there would cost the member its place in the group.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from processors.engine._context import MemberContext
from processors.engine._offsets import fetch_committed
from processors.engine._restore import ChangelogReader, RebuildReason
from processors.engine._stores import TaskStore
from processors.engine._task import Task
from runtime.logs import get_logger
from runtime.memory import release_memory_soon

__all__ = ["Restoration"]

_log = get_logger(__name__)


class Restoration:
    """The member's tasks that are assigned and not yet processing."""

    def __init__(self, context: MemberContext, reader: ChangelogReader) -> None:
        self._ctx = context
        self._reader = reader
        self._tasks: dict[int, Task | None] = {}
        """Tasks being restored (None: its producer is starting)."""
        self._job: asyncio.Task[None] | None = None
        self._changelog_specs = {
            context.names.changelog(s.name): s for s in context.processor.stores
        }
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
            metrics, name = self._ctx.metrics, self._ctx.processor.name
            metrics.restored_records.labels(name).inc(restored)
            metrics.restore_seconds.labels(name).observe(elapsed)
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
            self._tasks[partition] = await self._ctx.new_task(partition)

        created = await asyncio.gather(*(start(p) for p in partitions), return_exceptions=True)
        for failure in created:
            if isinstance(failure, BaseException):
                raise failure

    async def _catch_up(self, partitions: list[int]) -> None:
        waiting: dict[int, set[TopicPartition]] = {p: set() for p in partitions}
        stores: dict[TopicPartition, TaskStore] = {}
        for p in partitions:
            for name, store in self.task(p).stores.items():
                tp = TopicPartition(self._ctx.names.changelog(name), p)
                stores[tp] = store
                waiting[p].add(tp)

        positions = await self._start_positions(partitions)

        async def caught_up(tp: TopicPartition) -> None:
            waiting[tp.partition].discard(tp)
            if not waiting[tp.partition]:
                await self._activate(tp.partition, positions)

        def reset(tp: TopicPartition, reason: RebuildReason) -> TaskStore:
            """A store the changelog does not vouch for (`RebuildReason`): rebuilt from an
            empty one."""
            task = self.task(tp.partition)
            spec = self._changelog_specs[tp.topic]
            task.stores[spec.name].close()
            store = task.stores[spec.name] = self._ctx.state.new_store(tp.partition, spec)
            self._ctx.metrics.store_rebuilds.labels(
                self._ctx.processor.name, spec.name, reason
            ).inc()
            return store

        for p in [p for p, tps in waiting.items() if not tps]:  # stateless tasks
            await self._activate(p, positions)
        await self._reader.catch_up(stores, caught_up, reset)

    async def _start_positions(self, partitions: list[int]) -> dict[TopicPartition, int]:
        """Where the new tasks' inputs resume: the committed offsets, else the beginning.
        Read once the tasks' producers fenced any previous owner (so they match the state
        about to be restored, and nobody else can move them), and all together before any
        task resumes: a request behind a resumed partition's fetch waits for its long poll
        (0.5 s per task, measured)."""
        consumer = self._ctx.consumer
        tps = sorted(tp for tp in self._ctx.owned if tp.partition in set(partitions))
        positions = await fetch_committed(consumer, tps)  # stably: `_offsets.py`
        fresh = [tp for tp in tps if tp not in positions]
        if fresh:
            positions.update(await consumer.beginning_offsets(fresh))
        return positions

    async def _activate(self, partition: int, positions: dict[TopicPartition, int]) -> None:
        """A restored task starts processing: its inputs are positioned (`_start_positions`)
        and resumed, and the member's loop takes it over. Records aiokafka fetched before
        these seeks may still be returned by getmany: `task.offsets` holds the expected
        position and the loop skips anything before it."""
        ctx = self._ctx
        async with ctx.lock:
            # no await from here: a revocation cancels this coroutine only at an await
            task = self.task(partition)
            tps = sorted(tp for tp in ctx.owned if tp.partition == partition)
            for tp in tps:
                ctx.consumer.seek(tp, positions[tp])
                task.offsets[tp] = positions[tp]
            del self._tasks[partition]  # handed over: the loop processes it from now on
            ctx.tasks[partition] = task
            ctx.consumer.resume(*tps)
            ctx.show_tasks()

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
        await asyncio.gather(*(self._ctx.drop_unstarted(task) for task in restoring))
