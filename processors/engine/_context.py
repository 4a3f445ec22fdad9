"""What a group member shares with the parts it runs beside its poll loop (the restoration
of new tasks, the commits): `MemberContext`, and `MemberFailedError`, which ends a member.
Those parts reach the member's consumer, tasks and metrics, and the few member operations
they call, through the context and never import the member, so the engine's modules import
each other without a cycle (`tests/unit/test_engine_imports.py`). Private to the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.engine._metrics import EngineMetrics
from processors.engine._setup import Names
from processors.engine._state import StateManager
from processors.engine._task import Task
from processors.engine.api import Processor

__all__ = ["MemberContext", "MemberFailedError"]


class MemberFailedError(RuntimeError):
    """The member cannot continue (a rebalance callback, a restore or a commit failed); the
    engine closes it without committing and starts a fresh member, which restores its
    state."""


@dataclass(eq=False)
class MemberContext:
    """One member's state shared with its restoration and its commits. `tasks`, `owned`
    and the consumer's positions change only under `lock` (the loop processes under it)."""

    processor: Processor
    names: Names
    consumer: AIOKafkaConsumer
    """The member's group consumer."""
    metrics: EngineMetrics
    state: StateManager
    new_task: Callable[[int], Awaitable[Task]]
    """A started task for a newly assigned partition (exactly-once: its producer fenced
    any previous owner)."""
    drop_unstarted: Callable[[Task], Awaitable[None]]
    """Close a task that never processed, its stores kept (`StateManager.release`, clean)."""
    show_tasks: Callable[[], None]
    """Report the member's tasks (processing and restoring) in its metrics and health."""
    tasks: dict[int, Task] = field(default_factory=dict)
    """Tasks that process: restored, positioned at their committed offsets."""
    owned: set[TopicPartition] = field(default_factory=set)
    """The input partitions of the member's current assignment."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
