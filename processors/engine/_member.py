"""One consumer-group member of a processor: the poll-process-commit loop, the rebalance
listener (record and pause on assignment, commit and drop on revocation) and the tasks'
producers. New tasks are restored beside the loop (`_restoring.py`), commits are made by
`_commit.py`; both reach the member through its `MemberContext` (`_context.py`).
Private to the engine; `processors.engine` explains the guarantees."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from processors.engine._commit import Committer
from processors.engine._context import MemberContext, MemberFailedError
from processors.engine._metrics import EngineMetrics, Health
from processors.engine._restore import ChangelogReader
from processors.engine._restoring import Restoration
from processors.engine._setup import PreparedTopics
from processors.engine._state import StateManager
from processors.engine._task import Task
from processors.engine.api import Processor
from runtime.kafka import consumer_config, producer_config
from runtime.logs import get_logger
from runtime.settings import ProcessorSettings

__all__ = ["Member"]

_log = get_logger(__name__)
_POLL_MS = 200
TRANSACTION_TIMEOUT_MS = 60_000


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
        self.reader = ChangelogReader(bootstrap, f"{names.group}-{health.instance}-restore")
        self._failure: BaseException | None = None
        self._shared_producer: AIOKafkaProducer | None = None
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
        self.context = MemberContext(
            processor,
            names,
            self.consumer,
            metrics,
            state,
            new_task=self.new_task,
            drop_unstarted=self._drop_unstarted,
            show_tasks=self._show_tasks,
        )
        """The member's tasks, owned partitions and lock, shared with the two below."""
        self.restoration = Restoration(self.context, self.reader)
        """New tasks being restored beside the loop."""
        self.committer = Committer(
            self.context, exactly_once=self.exactly_once, interval_ms=settings.commit_interval_ms
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

    async def _drop_unstarted(self, task: Task) -> None:
        await self.drop(task, clean=True)

    # ---------------------------------------------------------------- rebalance
    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Record the assignment and pause the new partitions; nothing else here: aiokafka
        sends no heartbeat until this returns. The new tasks are restored beside the loop
        (`Restoration`) while the consumer keeps polling."""
        ctx = self.context
        try:
            self.metrics.rebalances.labels(self.processor.name).inc()
            ctx.owned = set(assigned)
            partitions = {tp.partition for tp in assigned}
            new = sorted(partitions - ctx.tasks.keys() - self.restoration.partitions())
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

    def _show_tasks(self) -> None:
        tasks = self.context.tasks
        self.metrics.tasks.labels(self.processor.name).set(len(tasks))
        restoring = len(self.restoration.partitions())
        self.metrics.restoring_tasks.labels(self.processor.name).set(restoring)
        self.health.tasks = sorted(tasks)
        self.health.state = "restoring" if restoring else "running"

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.restoration.stop()
            async with self.context.lock:
                await self._revoke(revoked)
        except Exception as exc:  # noqa: BLE001 - aiokafka would swallow it; fail the member
            _log.exception("revocation_failed")
            self._failure = exc

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        ctx = self.context
        gone = {tp.partition for tp in revoked}
        clean = False
        try:
            if self._failure is None and self.restoration.failure is None:
                await self.committer.commit(force=True)
                clean = True
        finally:
            dropped = [ctx.tasks.pop(p) for p in sorted(gone) if p in ctx.tasks]
            await asyncio.gather(*(self.drop(task, clean=clean, synced=clean) for task in dropped))
            ctx.owned -= revoked
            for tp in revoked:  # another member reports these partitions' lag now
                with contextlib.suppress(KeyError):
                    self.metrics.lag.remove(
                        self.processor.name, self.names.logical(tp.topic), str(tp.partition)
                    )
            self._show_tasks()
        _log.info("partitions_revoked", dropped=sorted(gone))

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
        ctx = self.context
        processed: set[Task] = set()
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=_POLL_MS, max_records=max_records)
            self.health.last_poll = time.monotonic()
            if self._failure is not None:
                raise MemberFailedError(f"rebalance failed: {self._failure!r}")
            if self.restoration.failure is not None:
                raise MemberFailedError(f"restore failed: {self.restoration.failure!r}")
            fetched = time.monotonic()
            async with ctx.lock:
                for tp, records in batch.items():
                    task = ctx.tasks.get(tp.partition)
                    if task is None or tp not in ctx.owned or not records:
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
                await self.committer.commit()
            if batch:
                self.metrics.batch_seconds.labels(self.processor.name).observe(
                    time.monotonic() - fetched
                )
        await self.restoration.stop()
        async with ctx.lock:
            await self.committer.commit(force=True)
        self.health.state = "stopping"

    async def close(self, *, clean: bool) -> None:
        """Leave the group. `clean`: the last commit succeeded (tasks hold nothing to keep);
        otherwise the tasks are dropped without committing."""
        ctx = self.context
        await self.committer.abandon()  # a failed member's commit in flight: not needed now
        await self.restoration.stop()
        async with ctx.lock:
            tasks = ctx.tasks.values()
            await asyncio.gather(*(self.drop(t, clean=clean, synced=clean) for t in tasks))
            ctx.tasks.clear()
            ctx.owned.clear()
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
