"""The engine's side of a state store (`TaskStore`): the transaction layer every store kind
shares, over a backend that only stores committed bytes (`_store_backend.py`). Private to
the engine.

What it owns (Quix Streams splits it the same way: `state/base/transaction.py` over
`state/base/partition.py`)
    Staging: handler writes (`set`/`delete`) and expiry deletes go to an overlay (key ->
    `StagedEntry`, or None for a staged delete); reads look at the overlay, then the
    backend. A value is encoded when set (mutate a value and set it again, never in place),
    so an entry too large for its changelog, or one orjson cannot encode, fails the write
    and sends the record to the DLQ instead of failing the commit.
    Per-record undo: the engine closes each record with `end_record(ok)`; the writes of a
    record that failed are undone (the overlay entries before it come back).
    Dirty keys: the keys of the records kept since the last `changelog_batch`, which gives
    their latest staged values (or tombstones) for the commit and keeps the overlay.
    Commit: `committed` (the transaction carrying those entries committed) writes them and
    the new checkpoint to the backend in one write, then drops the overlay entries the
    backend now holds (those not written again since `changelog_batch`). `restore_batch`
    writes committed changelog records read back. Nothing else writes to the backend, so a
    durable backend only ever holds committed state (`_disk_store.py`).
    Retention: `expire` stages the deletes (with tombstones for the changelog) of entries
    last written before stream time - retention, found by the store kind's `Expiry`
    (`_store_expiry.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Final, NamedTuple

import orjson

from processors.engine._clock import wall_ms
from processors.engine._limits import StoreRecordTooLargeError, usable_bytes
from processors.engine._store_backend import (
    ChangelogEntry,
    Checkpoint,
    StoreBackend,
    write_time,
)
from processors.engine._store_expiry import Expiry
from processors.engine.api import JsonValue, Store, StoreSpec

__all__ = ["ChangelogEntry", "StagedEntry", "TaskStore"]

_dumps = orjson.dumps
_loads = orjson.loads
_READ_CACHE_MAX: Final = 20_000  # emptied when full (cheap, no LRU book-keeping)


class StagedEntry(NamedTuple):
    """A value written since the last commit that took it."""

    value: JsonValue
    written_ms: int
    changelog_value: bytes
    """`orjson([written_ms, value])`: the changelog record's value, encoded at the write."""


_new_entry = tuple.__new__  # `_new_entry(StagedEntry, (...))`: no Python-level __new__ call
_ABSENT: Final = StagedEntry(None, 0, b"")
"""Compared by identity: "not in the overlay" (None in the overlay: a staged delete)."""


class TaskStore(Store):
    """One (task, store): the handler's `Store` API and what the engine needs besides,
    over a `StoreBackend` (module docstring).

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

    def __init__(self, spec: StoreSpec, backend: StoreBackend, expiry: Expiry | None) -> None:
        """`expiry`: how the store finds due entries (None: the spec has no retention)."""
        self.spec = spec
        self.now_ms = 0
        self.record_limit = usable_bytes(spec.max_message_bytes, spec.compression_type)
        self._backend = backend
        self._backend_get = backend.get  # bound once: `get` is the hottest path
        self._expiry = expiry if spec.retention_ms is not None else None
        self._staged: dict[str, StagedEntry | None] = {}
        self._dirty: set[str] = set()
        self._undo: dict[str, StagedEntry | None] = {}
        """Key -> its overlay entry before the open record (`_ABSENT`: none)."""
        self._read_cache: dict[str, JsonValue] = {}
        """Values read from the backend lately (present keys only), so a hot key, e.g. a
        conversation's mode, costs a dict lookup instead of a decode (and, on disk, a
        RocksDB get of ~7 µs)."""
        checkpoint = backend.checkpoint()
        self.changelog_offset = checkpoint.changelog_offset
        self.unconfirmed_from = checkpoint.unconfirmed_from
        self.synced_ms = checkpoint.synced_ms

    # ---------------------------------------------------------------- Store API
    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        entry = self._staged.get(key, _ABSENT)
        if entry is _ABSENT:
            cached = self._read_cache.get(key, _ABSENT)
            if cached is not _ABSENT:
                return cached
            raw = self._backend_get(key)
            if raw is None:
                return default
            value = _loads(raw)[1]
            if len(self._read_cache) >= _READ_CACHE_MAX:
                self._read_cache.clear()
            self._read_cache[key] = value
            return value
        return default if entry is None else entry.value

    def set(self, key: str, value: JsonValue) -> None:
        """Write `value` (None deletes the key)."""
        if value is None:
            self.delete(key)
            return
        if not isinstance(key, str):
            raise TypeError(f"store keys are str, got {type(key).__name__}")
        now = self.now_ms
        # orjson fails here (the record goes to the DLQ), not at commit time. "%b" copies the
        # result: a bytes from orjson 3.13 keeps ~4 KiB of RSS while it lives (measured).
        raw = b"%b" % _dumps((now, value))
        self.check_record(key, raw)
        staged = self._staged
        if key not in self._undo:
            self._undo[key] = staged.get(key, _ABSENT)
        staged[key] = _new_entry(StagedEntry, (value, now, raw))
        if self._expiry is not None:
            self._expiry.staged(key, now)

    def delete(self, key: str) -> None:
        if key not in self:
            return
        if key not in self._undo:
            self._undo[key] = self._staged.get(key, _ABSENT)
        self._staged[key] = None

    def items(self) -> Iterator[tuple[str, JsonValue]]:
        staged = list(self._staged.items())
        shadowed = {key for key, _ in staged}
        for key, raw in self._backend.items():
            if key not in shadowed:
                yield key, _loads(raw)[1]
        for key, entry in staged:
            if entry is not None:
                yield key, entry.value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        entry = self._staged.get(key, _ABSENT)
        if entry is _ABSENT:
            return key in self._read_cache or self._backend.get(key) is not None
        return entry is not None

    def __len__(self) -> int:
        """Exact with a backend that counts exactly (memory), staged writes included; else
        the backend's estimate of the committed entries (`RocksDBBackend.count`)."""
        count = self._backend.count()
        if self._backend.counts_exactly:
            for key, entry in self._staged.items():
                stored = self._backend.get(key) is not None
                count += (entry is not None) - stored
        return count

    # ---------------------------------------------------------------- engine side
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

    def mark_synced(self, now_ms: int) -> None:
        """The store holds the whole committed changelog as of `now_ms` (its task's commit
        succeeded, its restore caught up, or it is released by an owner that was caught up)."""
        self.synced_ms = now_ms

    def end_record(self, ok: bool) -> None:
        """Keep (`ok`: the keys become dirty) or undo the writes made since the previous
        call."""
        undo = self._undo
        if not undo:
            return
        if ok:
            self._dirty.update(undo)
        else:
            staged = self._staged
            for key, previous in undo.items():
                if previous is _ABSENT:
                    staged.pop(key, None)
                else:
                    staged[key] = previous
        undo.clear()

    def expire(self, stream_time_ms: int) -> int:
        """Stage deletes of entries last written before `stream_time_ms - retention_ms`
        (tombstones in the next changelog batch); how many. Call it between records."""
        if self._expiry is None or self.spec.retention_ms is None:
            return 0
        return self._expiry.expire(stream_time_ms - self.spec.retention_ms, self)

    def expire_keys(self, keys: Iterable[str], cutoff_ms: int) -> int:
        """Stage deletes of those `keys` (each counted once) whose current entry was last
        written before `cutoff_ms`; how many (for `Expiry`)."""
        staged, dirty = self._staged, self._dirty
        expired = 0
        stored = []
        for key in dict.fromkeys(keys):
            entry = staged.get(key, _ABSENT)
            if entry is _ABSENT:
                stored.append(key)
            elif entry is not None and entry.written_ms < cutoff_ms:
                staged[key] = None
                dirty.add(key)
                expired += 1
        if stored:
            for key, raw in zip(stored, self._backend.get_many(stored), strict=True):
                if raw is not None and write_time(raw) < cutoff_ms:
                    staged[key] = None
                    dirty.add(key)
                    expired += 1
        return expired

    def is_staged(self, key: str) -> bool:
        return key in self._staged

    def changelog_batch(self) -> list[ChangelogEntry]:
        """(key, value-or-tombstone) of every dirty key, latest value only; clears the dirty
        set. The entries become durable in the store only through `committed`."""
        staged = self._staged
        out = [
            (key.encode(), None if (entry := staged.get(key)) is None else entry.changelog_value)
            for key in self._dirty
        ]
        self._dirty.clear()
        return out

    @property
    def has_dirty(self) -> bool:
        return bool(self._dirty)

    def committed(
        self, entries: Sequence[ChangelogEntry], next_offset: int, first_offset: int
    ) -> None:
        """The transaction (or at-least-once changelog write) carrying `entries`, which
        came from `changelog_batch`, committed; they are the changelog records from
        `first_offset` to `next_offset` (exclusive). The backend takes them with the new
        checkpoint in one write; the overlay then drops the entries the backend holds. The
        commit stays unconfirmed (`unconfirmed_from`) until a restore reads it back."""
        self.synced_ms = wall_ms()  # the task's transaction committed: the store is the log
        self._write(entries, next_offset, first_offset)
        staged, dirty, undo, cache = self._staged, self._dirty, self._undo, self._read_cache
        for key_bytes, value in entries:
            key = key_bytes.decode()
            cache.pop(key, None)  # the backend has a newer value
            entry = staged.get(key, _ABSENT)
            if entry is _ABSENT or key in dirty or key in undo:
                continue  # written again since `changelog_batch`: still staged
            if (None if entry is None else entry.changelog_value) == value:
                del staged[key]

    def restore_batch(
        self, records: Sequence[tuple[bytes | None, bytes | None]], next_offset: int
    ) -> None:
        """Apply committed changelog records (in offset order; key None: skipped) and move
        `changelog_offset` to `next_offset`, atomically where the backend is durable.
        Everything before `next_offset` is then confirmed (`unconfirmed_from` None): the
        caller read it back committed, or confirmed the store's last commit. The store
        should have no staged writes (restore comes before processing)."""
        self._read_cache.clear()
        self._write(records, next_offset, None)
        if self._expiry is not None:
            self._expiry.restored(records)

    def _write(
        self,
        records: Sequence[tuple[bytes | None, bytes | None]],
        next_offset: int,
        unconfirmed_from: int | None,
    ) -> None:
        self._backend.write(records, Checkpoint(next_offset, unconfirmed_from, self.synced_ms))
        self.changelog_offset = next_offset
        self.unconfirmed_from = unconfirmed_from

    def close(self) -> None:
        """Release the backend; staged, uncommitted writes are dropped."""
        self._backend.close()
        self._expiry = None
        self._staged.clear()
        self._dirty.clear()
        self._undo.clear()
        self._read_cache.clear()
