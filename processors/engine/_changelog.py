"""A task's changelog writes at a commit: each dirty store's entries sent to the task's
partition of the store's changelog topic, compressed with the store's codec, in batches
that fit the topic (`_limits.py`). Private to the engine.

Whole record batches (`send_batch`: one call per batch instead of one `send` per entry,
which cost about 15 µs of CPU per entry; a deduplicating store writes an entry per
record). Exactly-once: inside the task's open transaction. A store makes the entries
durable only once they are committed (`ChangelogWrite.apply`).
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from processors.engine._limits import new_batch
from processors.engine._setup import Names
from processors.engine._stores import ChangelogEntry, TaskStore

__all__ = ["ChangelogWrite", "send_changelog"]


class ChangelogWrite(NamedTuple):
    """One store's changelog entries of a commit and their sends (future, record count)."""

    store: TaskStore
    entries: list[ChangelogEntry]
    sent: list[tuple[asyncio.Future[Any], int]]

    def apply(self) -> None:
        """The sends are acknowledged and committed: the store makes the entries durable at
        the offset after the last one (the next record there is the commit marker); the
        first one's offset is where a later restore checks that the commit held."""
        if self.sent:
            end = max(f.result().offset + count for f, count in self.sent)
            first = min(f.result().offset for f, _ in self.sent)  # a batch's base offset
            self.store.committed(self.entries, end, first)


async def send_changelog(
    producer: AIOKafkaProducer,
    names: Names,
    partition: int,
    changelog: list[tuple[TaskStore, list[ChangelogEntry]]],
    *,
    transactional: bool,
) -> list[ChangelogWrite]:
    """Send each store's entries (`TaskStore.changelog_batch`) to `partition` of its
    changelog topic; the writes, to await and then `apply` once committed."""
    writes = []
    for store, entries in changelog:
        topic = names.changelog(store.spec.name)
        sent: list[tuple[asyncio.Future[Any], int]] = []
        codec, limit = store.spec.compression_type, store.record_limit
        batch = new_batch(codec, limit, transactional=transactional)
        for key, value in entries:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                count = batch.record_count()
                sent.append((await producer.send_batch(batch, topic, partition=partition), count))
                batch = new_batch(codec, limit, transactional=transactional)
                batch.append(key=key, value=value, timestamp=None)  # a first one fits
        if batch.record_count():
            count = batch.record_count()
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
        writes.append(ChangelogWrite(store, entries, sent))
    return writes
