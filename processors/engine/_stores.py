"""The engine's side of a state store (`TaskStore`) and the in-memory store: a dict per
(task, store) with per-record rollback, staged changelog writes and retention by stream time.
Private to the engine.

Changelog record format (compacted topic, one partition per task): key = the store key
(UTF-8), value = `orjson([write_time_ms, value])`, or a tombstone (null value) for a delete.
The write time is the stream time at which the entry was last written; expiry and restore
both use it.
"""

from __future__ import annotations

import heapq
from abc import abstractmethod
from collections.abc import Iterator, Sequence

import orjson

from processors.engine._clock import wall_ms
from processors.engine._limits import StoreRecordTooLargeError, usable_bytes
from processors.engine.api import JsonValue, Store, StoreSpec

__all__ = ["ChangelogEntry", "MemoryStore", "TaskStore"]

ChangelogEntry = tuple[bytes, bytes | None]
"""(key, `orjson([write_time_ms, value])` or None for a tombstone): one changelog record."""


class TaskStore(Store):
    """What the engine needs of a store besides the handler's `Store` API.

    `changelog_offset` is the store's position in its changelog partition: the store holds
    exactly the committed changelog records before that offset (plus, between commits, the
    staged writes of the open transaction, which only `committed` makes durable). A store
    restored from its changelog catches up from this offset, not from the beginning.

    `unconfirmed_from` marks what that claim rests on: records read back committed
    (`restore_batch`: None), or the writes of the store's own last commit, which Kafka
    reported committed but nobody has read back yet (`committed`: the first changelog offset
    of those writes). A catch-up first checks that such a commit is in the committed
    changelog, and rebuilds the store if it is not (`_restore.py`).
    """

    spec: StoreSpec
    now_ms: int
    """Stream time of the record being processed: the write time of its writes."""
    changelog_offset: int
    unconfirmed_from: int | None
    """The first changelog offset of the store's last commit while no `read_committed`
    read has returned one of its records ([unconfirmed_from, changelog_offset) are that
    commit's records); None when the store holds only records read back committed."""
    record_limit: int
    """The largest changelog record (key + value bytes) a write may make: from the
    changelog topic's actual `max.message.bytes` once the engine has described it, else
    from `spec` (`_limits.usable_bytes`)."""
    synced_ms: int
    """Wall-clock time at which the store last held the whole committed changelog (or,
    for a store that started empty, began reading it). A catch-up from `changelog_offset`
    sees every tombstone written since only if it starts within the changelog's
    `delete.retention.ms` of this time: compaction may remove a tombstone that long
    after it was written (`processors.engine._state`)."""

    def mark_synced(self, now_ms: int) -> None:
        """The store holds the whole committed changelog as of `now_ms` (its task's commit
        succeeded, its restore caught up, or it is released by an owner that was caught up)."""
        self.synced_ms = now_ms

    def check_record(self, key: str, raw: bytes) -> None:
        """Refuse (before writing anything) a write whose changelog record would not fit."""
        if len(raw) + 4 * len(key) <= self.record_limit:  # UTF-8: at most 4 bytes a char
            return
        key_bytes = len(key.encode())
        if len(raw) + key_bytes > self.record_limit:
            raise StoreRecordTooLargeError(
                f"store {self.spec.name!r}: one entry's changelog record would be "
                f"{len(raw) + key_bytes} bytes (key {key_bytes}, value {len(raw)}), over the "
                f"{self.record_limit} its changelog topic takes"
            )

    @abstractmethod
    def end_record(self, ok: bool) -> None:
        """Keep (`ok`) or undo the writes made since the previous call."""

    @abstractmethod
    def expire(self, stream_time_ms: int) -> int:
        """Delete entries last written before `stream_time_ms - retention_ms` (staged, with
        tombstones for the changelog); how many."""

    @abstractmethod
    def changelog_batch(self) -> list[ChangelogEntry]:
        """The dirty keys' latest values (or tombstones); clears the dirty set. The entries
        become durable in the store only through `committed`."""

    @property
    @abstractmethod
    def has_dirty(self) -> bool: ...

    @abstractmethod
    def restore_batch(self, records: Sequence[ChangelogEntry], next_offset: int) -> None:
        """Apply committed changelog records (in offset order) and move `changelog_offset`
        to `next_offset`, atomically where the store is durable. Everything before
        `next_offset` is then confirmed (`unconfirmed_from` None): the caller read it back
        committed, or confirmed the store's last commit."""

    @abstractmethod
    def committed(
        self, entries: Sequence[ChangelogEntry], next_offset: int, first_offset: int
    ) -> None:
        """The transaction (or at-least-once changelog write) carrying `entries`, which
        came from `changelog_batch`, committed; they are the changelog records from
        `first_offset` to `next_offset` (exclusive). A durable store applies them with the
        new offset, atomically. The commit stays unconfirmed (`unconfirmed_from`) until a
        restore reads it back."""

    @abstractmethod
    def __len__(self) -> int: ...

    def close(self) -> None:
        """Release resources (staged, uncommitted writes are dropped)."""


class MemoryStore(TaskStore):
    """A key-value store of one task (input partition), held in a dict.

    The engine brackets each record with `begin_record` / `end_record`: writes a handler made
    for a record that then failed are undone. Keys written since the last commit are
    "dirty"; `changelog_batch` gives their latest values (or tombstones) for the commit.
    """

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self.record_limit = usable_bytes(spec.max_message_bytes, spec.compression_type)
        self._data: dict[str, tuple[JsonValue, int]] = {}
        self._dirty: set[str] = set()
        self._undo: dict[str, tuple[JsonValue, int] | None] = {}
        self._expiry: list[tuple[int, str]] = []
        self.now_ms = 0
        self.changelog_offset = 0
        self.unconfirmed_from: int | None = None
        self.synced_ms = wall_ms()  # empty: a restore from the beginning starts now

    # ---------------------------------------------------------------- Store API
    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        entry = self._data.get(key)
        return default if entry is None else entry[0]

    def set(self, key: str, value: JsonValue) -> None:
        """Write `value` (None deletes the key)."""
        if value is None:
            self.delete(key)
            return
        if not isinstance(key, str):
            raise TypeError(f"store keys are str, got {type(key).__name__}")
        # fail here (the record goes to the DLQ), not at commit time
        self.check_record(key, orjson.dumps((self.now_ms, value)))
        if key not in self._undo:
            self._undo[key] = self._data.get(key)
        self._data[key] = (value, self.now_ms)
        if self.spec.retention_ms is not None:
            heapq.heappush(self._expiry, (self.now_ms, key))

    def delete(self, key: str) -> None:
        if key not in self._data:
            return
        if key not in self._undo:
            self._undo[key] = self._data.get(key)
        del self._data[key]

    def items(self) -> Iterator[tuple[str, JsonValue]]:
        for key, (value, _) in list(self._data.items()):
            yield key, value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    # ---------------------------------------------------------------- engine side
    def end_record(self, ok: bool) -> None:
        """Keep (`ok`) or undo the writes made since the previous call."""
        if not self._undo:
            return
        if ok:
            self._dirty.update(self._undo)
        else:
            for key, previous in self._undo.items():
                if previous is None:
                    self._data.pop(key, None)
                else:
                    self._data[key] = previous
        self._undo.clear()

    def expire(self, stream_time_ms: int) -> int:
        """Delete entries last written before `stream_time_ms - retention_ms`; how many."""
        retention = self.spec.retention_ms
        if retention is None:
            return 0
        cutoff = stream_time_ms - retention
        expired = 0
        heap = self._expiry
        while heap and heap[0][0] < cutoff:
            _, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is not None and entry[1] < cutoff:
                del self._data[key]
                self._dirty.add(key)
                expired += 1
        return expired

    def changelog_batch(self) -> list[ChangelogEntry]:
        """(key, value-or-tombstone) of every dirty key, latest value only; clears the set."""
        out: list[tuple[bytes, bytes | None]] = []
        for key in self._dirty:
            entry = self._data.get(key)
            out.append(
                (
                    key.encode(),
                    None if entry is None else orjson.dumps((entry[1], entry[0])),
                )
            )
        self._dirty.clear()
        return out

    @property
    def has_dirty(self) -> bool:
        return bool(self._dirty)

    def restore_batch(self, records: Sequence[ChangelogEntry], next_offset: int) -> None:
        for key, value in records:
            self.restore(key, value)
        self.changelog_offset = next_offset
        self.unconfirmed_from = None

    def committed(
        self, entries: Sequence[ChangelogEntry], next_offset: int, first_offset: int
    ) -> None:
        """The dict already holds the values; only the position moves."""
        self.changelog_offset = next_offset
        self.unconfirmed_from = first_offset
        self.synced_ms = wall_ms()

    def restore(self, key: bytes | None, value: bytes | None) -> int:
        """Apply one changelog record; returns the entry's write time (0 for a tombstone)."""
        if key is None:
            return 0
        name = key.decode()
        if value is None:
            self._data.pop(name, None)
            return 0
        written, item = orjson.loads(value)
        self._data[name] = (item, int(written))
        if self.spec.retention_ms is not None:
            heapq.heappush(self._expiry, (int(written), name))
        return int(written)
