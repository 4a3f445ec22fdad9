"""One consumer-group member of a processor: the poll-process-commit loop, the rebalance
listener (record and pause on assignment, commit and drop on revocation), the restore of
new tasks beside the loop, and the commit policy.
Private to the engine; `processors.engine` explains the guarantees."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from processors.engine._metrics import EngineMetrics, Health
from processors.engine._offsets import fetch_committed
from processors.engine._restore import ChangelogReader
from processors.engine._restoring import Restoration
from processors.engine._setup import PreparedTopics
from processors.engine._state import StateManager
from processors.engine._task import SealedCommit, Task
from processors.engine.api import Processor
from runtime.kafka import consumer_config, producer_config
from runtime.logs import get_logger
from runtime.settings import ProcessorSettings

__all__ = ["Member", "MemberFailedError"]

_log = get_logger(__name__)
_POLL_MS = 200
TRANSACTION_TIMEOUT_MS = 60_000


class MemberFailedError(RuntimeError):
    """The member cannot continue (a rebalance callback or a commit failed); the engine
    closes it without committing and starts a fresh member, which restores its state."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, member: Member) -> None:
        self.member = member

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.member.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.member.on_assigned(set(assigned))


class Member:
    """A consumer in the processor's group and the tasks of the partitions it owns."""

    def __init__(
        self,
        processor: Processor,
        settings: ProcessorSettings,
        bootstrap: str,
        topics: PreparedTopics,
        metrics: EngineMetrics,
        health: Health,
        state: StateManager,
    ) -> None:
        self.processor = processor
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = topics
        names = self.names = topics.names
        self.metrics = metrics
        self.health = health
        self.exactly_once = settings.processing_guarantee == "exactly-once"
        self.inputs = [names.topic(t) for t in processor.inputs]
        self.state = state
        self.tasks: dict[int, Task] = {}
        """Tasks that process: restored, positioned at their committed offsets."""
        self.reader = ChangelogReader(bootstrap, f"{names.group}-{health.instance}-restore")
        self.restoration = Restoration(self, self.reader)
        """New tasks being restored beside the loop."""
        self._owned: set[TopicPartition] = set()
        self._lock = asyncio.Lock()
        self._failure: BaseException | None = None
        self._shared_producer: AIOKafkaProducer | None = None
        self._background: asyncio.Future[None] | None = None
        """The at-least-once commit finishing while the next records are processed."""
        self._last_commit = time.monotonic()
        self.consumer = AIOKafkaConsumer(
            **consumer_config(
                bootstrap,
                names.group,
                partition_assignment_strategy=(RangePartitionAssignor,),
                max_poll_interval_ms=300_000,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=max(300, settings.session_timeout_ms // 4),
                fetch_max_bytes=32 * 1024 * 1024,
                client_id=f"{names.group}-{health.instance}",
            )
        )

    # ---------------------------------------------------------------- producers
    def _producer(self, **extra: Any) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **producer_config(
                self.bootstrap,
                compression_type=self.processor.compression_type,
                linger_ms=0,  # the engine batches itself (send_batch): no linger
                **extra,
            )
        )

    async def new_task(self, partition: int) -> Task:
        """A task for a newly assigned partition, its stores from the state manager (kept
        from an earlier assignment where possible) and, exactly-once, its own producer."""
        if self.exactly_once:
            producer = self._producer(
                transactional_id=self.names.transactional_id(partition),
                transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            )
            # start() sends InitProducerId: bumps the epoch of this task's transactional id,
            # fencing a previous owner and completing or aborting its open transaction.
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
        else:
            assert self._shared_producer is not None
            producer = self._shared_producer
        task = Task(
            partition,
            self.processor,
            self.names,
            producer,
            self.metrics,
            transactional=self.exactly_once,
            max_clock_skew_ms=self.settings.max_clock_skew_ms,
            stores=self.state.open(partition),
            max_message_bytes=self.topics.max_message_bytes,
        )
        try:
            await task.begin()
        except BaseException:
            await self.drop(task, clean=True)
            raise
        return task

    async def drop(self, task: Task, *, clean: bool, synced: bool = False) -> None:
        """Close a task (without committing), its stores back to the state manager: `clean`,
        `synced` (the task was processing) as in `StateManager.release`."""
        try:
            await task.close()
        finally:
            self.state.release(task.partition, task.stores, clean=clean, synced=synced)

    # ---------------------------------------------------------------- rebalance
    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Record the assignment and pause the new partitions; nothing else here: aiokafka
        sends no heartbeat until this returns. The new tasks are restored beside the loop
        (`Restoration`) while the consumer keeps polling."""
        try:
            self.metrics.rebalances.labels(self.processor.name).inc()
            self._owned = set(assigned)
            partitions = {tp.partition for tp in assigned}
            new = sorted(partitions - self.tasks.keys() - self.restoration.partitions())
            if new:
                self.consumer.pause(*(tp for tp in assigned if tp.partition in new))
                self.restoration.start(new)
            self._show_tasks()
            _log.info(
                "partitions_assigned",
                tasks=sorted(partitions),
                restoring=new,
            )
        except Exception as exc:  # noqa: BLE001 - aiokafka would swallow it; fail the member
            _log.exception("assignment_failed")
            self._failure = exc

    async def start_positions(self, partitions: list[int]) -> dict[TopicPartition, int]:
        """Where the new tasks' inputs resume: the committed offsets, else the beginning.
        Read once the tasks' producers fenced any previous owner (so they match the state
        about to be restored, and nobody else can move them), and all together before any
        task resumes: a request behind a resumed partition's fetch waits for its long poll
        (0.5 s per task, measured)."""
        tps = sorted(tp for tp in self._owned if tp.partition in set(partitions))
        positions = await fetch_committed(self.consumer, tps)  # stably: `_offsets.py`
        fresh = [tp for tp in tps if tp not in positions]
        if fresh:
            positions.update(await self.consumer.beginning_offsets(fresh))
        return positions

    async def activate(self, partition: int, positions: dict[TopicPartition, int]) -> None:
        """A restored task starts processing: its inputs are positioned (`start_positions`)
        and resumed. Records aiokafka fetched before these seeks may still be returned by
        getmany: `task.offsets` holds the expected position and the loop skips anything
        before it."""
        async with self._lock:
            # no await from here: a revocation cancels this coroutine only at an await
            task = self.restoration.task(partition)
            tps = sorted(tp for tp in self._owned if tp.partition == partition)
            for tp in tps:
                self.consumer.seek(tp, positions[tp])
                task.offsets[tp] = positions[tp]
            self.restoration.handed_over(partition)
            self.tasks[partition] = task
            self.consumer.resume(*tps)
            self._show_tasks()

    def _show_tasks(self) -> None:
        self.metrics.tasks.labels(self.processor.name).set(len(self.tasks))
        restoring = len(self.restoration.partitions())
        self.metrics.restoring_tasks.labels(self.processor.name).set(restoring)
        self.health.tasks = sorted(self.tasks)
        self.health.state = "restoring" if restoring else "running"

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.restoration.stop()
            async with self._lock:
                await self._revoke(revoked)
        except Exception as exc:  # noqa: BLE001 - aiokafka would swallow it; fail the member
            _log.exception("revocation_failed")
            self._failure = exc

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked}
        clean = False
        try:
            if self._failure is None and self.restoration.failure is None:
                await self._commit(force=True)
                clean = True
        finally:
            dropped = [self.tasks.pop(p) for p in sorted(gone) if p in self.tasks]
            await asyncio.gather(*(self.drop(task, clean=clean, synced=clean) for task in dropped))
            self._owned -= revoked
            for tp in revoked:  # another member reports these partitions' lag now
                with contextlib.suppress(KeyError):
                    self.metrics.lag.remove(
                        self.processor.name, self.names.logical(tp.topic), str(tp.partition)
                    )
            self._show_tasks()
        _log.info("partitions_revoked", dropped=sorted(gone))

    # ---------------------------------------------------------------- commit
    async def _commit(self, *, force: bool = False) -> None:
        """Commit every task with records since its last commit, once per commit interval
        (`force`: now, and the at-least-once commit in flight finished first)."""
        background = self._background
        if background is not None and (force or background.done()):
            await self._settle_background()  # raises its failure
        interval = self.settings.commit_interval_ms / 1000
        if not force and time.monotonic() - self._last_commit < interval:
            return
        dirty = [t for t in self.tasks.values() if t.dirty]
        self._last_commit = time.monotonic()
        if not dirty:
            return
        if not self.exactly_once:
            await self._commit_at_least_once(dirty, force=force)
            return
        started = time.monotonic()
        name = self.processor.name
        try:
            await asyncio.gather(*(t.commit_transaction(self.names.group) for t in dirty))
            await asyncio.gather(*(t.begin() for t in dirty))
        except Exception as exc:
            self.metrics.commits.labels(name, "failed").inc()
            raise MemberFailedError(f"commit failed: {exc!r}") from exc
        self.metrics.commits.labels(name, "ok").inc()
        self.metrics.commit_seconds.labels(name).observe(time.monotonic() - started)
        self._update_lag(dirty)

    async def _commit_at_least_once(self, dirty: list[Task], *, force: bool) -> None:
        """Seal the tasks' commits in line, finish them in the background (one in flight;
        the next seal waits for it): see "At-least-once" in the package docstring."""
        await self._settle_background()
        try:
            sealed = [(t, await t.seal_at_least_once()) for t in dirty]
        except Exception as exc:
            self.metrics.commits.labels(self.processor.name, "failed").inc()
            raise MemberFailedError(f"commit failed: {exc!r}") from exc
        finish = self._finish_at_least_once(sealed)
        if force:
            await finish
        else:
            self._background = asyncio.ensure_future(finish)

    async def _finish_at_least_once(self, sealed: list[tuple[Task, SealedCommit]]) -> None:
        started = time.monotonic()
        name = self.processor.name
        try:
            changelog = await asyncio.gather(*(t.finish_at_least_once(s) for t, s in sealed))
            offsets = {tp: off for _, s in sealed for tp, off in s.offsets.items()}
            await asyncio.gather(
                self.consumer.commit(offsets),
                *(f for writes in changelog for w in writes for f, _ in w.sent),
            )
        except Exception as exc:
            self.metrics.commits.labels(name, "failed").inc()
            raise MemberFailedError(f"commit failed: {exc!r}") from exc
        for writes in changelog:
            for write in writes:
                write.apply()
        for task, s in sealed:
            task.count_committed(s)
        self.metrics.commits.labels(name, "ok").inc()
        self.metrics.commit_seconds.labels(name).observe(time.monotonic() - started)
        self._update_lag([t for t, _ in sealed])

    async def _settle_background(self) -> None:
        """Wait for the at-least-once commit in flight, if any; its failure is raised."""
        background, self._background = self._background, None
        if background is not None:
            await background

    def _update_lag(self, tasks: list[Task]) -> None:
        name = self.processor.name
        for task in tasks:
            for tp, committed in task.offsets.items():
                end = self.consumer.last_stable_offset(tp) or self.consumer.highwater(tp)
                if end is not None:
                    self.metrics.lag.labels(name, self.names.logical(tp.topic), tp.partition).set(
                        max(0, end - committed)
                    )
        totals: dict[str, int] = {}
        for task in self.tasks.values():
            for store, size in task.store_sizes().items():
                totals[store] = totals.get(store, 0) + size
        for store, size in totals.items():
            self.metrics.store_entries.labels(name, store).set(size)

    # ---------------------------------------------------------------- loop
    async def run(self, stop: asyncio.Event) -> None:
        """Poll, process and commit until `stop` is set; then commit and leave the group."""
        if not self.exactly_once:
            self._shared_producer = self._producer()
            await self._shared_producer.start()
        await self.reader.start()
        await self.consumer.start()
        self.consumer.subscribe(self.inputs, listener=_Listener(self))
        max_records = self.settings.max_batch_records
        processed: set[Task] = set()
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=_POLL_MS, max_records=max_records)
            self.health.last_poll = time.monotonic()
            if self._failure is not None:
                raise MemberFailedError(f"rebalance failed: {self._failure!r}")
            if self.restoration.failure is not None:
                raise MemberFailedError(f"restore failed: {self.restoration.failure!r}")
            fetched = time.monotonic()
            async with self._lock:
                for tp, records in batch.items():
                    task = self.tasks.get(tp.partition)
                    if task is None or tp not in self._owned or not records:
                        continue  # revoked between the fetch and now
                    expected = task.offsets.get(tp, 0)
                    if records[0].offset < expected:  # fetched before a seek: seen already
                        records = [r for r in records if r.offset >= expected]
                        if not records:
                            continue
                    await task.process(tp, records)
                    processed.add(task)
                for task in processed:  # outputs on their way now, not at commit time
                    await task.send_outputs()
                processed.clear()
                await self._commit()
            if batch:
                self.metrics.batch_seconds.labels(self.processor.name).observe(
                    time.monotonic() - fetched
                )
        await self.restoration.stop()
        async with self._lock:
            await self._commit(force=True)
        self.health.state = "stopping"

    async def close(self, *, clean: bool) -> None:
        """Leave the group. `clean`: the last commit succeeded (tasks hold nothing to keep);
        otherwise the tasks are dropped without committing."""
        background, self._background = self._background, None
        if background is not None:  # a failed member's commit in flight: not needed now
            background.cancel()
            await asyncio.wait([background])
            if not background.cancelled():
                background.exception()  # retrieved: it was the failure being handled
        await self.restoration.stop()
        async with self._lock:
            tasks = self.tasks.values()
            await asyncio.gather(*(self.drop(t, clean=clean, synced=clean) for t in tasks))
            self.tasks.clear()
            self._owned.clear()
        try:
            # unsubscribe first so stop() does not call the listener with closed tasks
            self.consumer.unsubscribe()
        except Exception as exc:  # noqa: BLE001 - best effort: stop() leaves the group anyway
            _log.info("unsubscribe_failed", error=repr(exc))
        try:
            await self.consumer.stop()
        except KafkaError as exc:
            # aiokafka 0.14's coordination task can die on `assert assignment is not None and
            # assignment.active` when the subscription was just dropped (seen 2026-12-07 after
            # a failed restore during a broker restart, docs/faults.md finding 9); stop()
            # re-raises it. The consumer is closed all the same: go on closing the rest.
            _log.warning("consumer_stop_failed", error=repr(exc)[:300])
        await self.reader.stop()
        if self._shared_producer is not None:
            await self._shared_producer.stop()
        self.metrics.tasks.labels(self.processor.name).set(0)
        self.health.tasks = []
        _log.info("member_closed", clean=clean)
