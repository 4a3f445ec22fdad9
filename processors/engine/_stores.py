"""The in-memory state store: a dict per (task, store) with per-record rollback, staged
changelog writes and retention by stream time. Private to the engine.

Changelog record format (compacted topic, one partition per task): key = the store key
(UTF-8), value = `orjson([write_time_ms, value])`, or a tombstone (null value) for a delete.
The write time is the stream time at which the entry was last written; expiry and restore
both use it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import orjson

from processors.engine.api import JsonValue, Store, StoreSpec

__all__ = ["MemoryStore"]

_MISSING = object()


class MemoryStore(Store):
    """A key-value store of one task (input partition), held in a dict.

    The engine brackets each record with `begin_record` / `end_record`: writes a handler made
    for a record that then failed are undone. Keys written since the last commit are
    "dirty"; `changelog_batch` gives their latest values (or tombstones) for the commit.
    """

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self._data: dict[str, tuple[JsonValue, int]] = {}
        self._dirty: set[str] = set()
        self._undo: dict[str, tuple[JsonValue, int] | None] = {}
        self._expiry: list[tuple[int, str]] = []
        self.now_ms = 0
        """Stream time of the record being processed: the write time of its writes."""

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
        orjson.dumps(value)  # fail here (the record goes to the DLQ), not at commit time
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

    def changelog_batch(self) -> list[tuple[bytes, bytes | None]]:
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
