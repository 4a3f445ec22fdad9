"""How a store finds the entries its retention (`StoreSpec.retention_ms`) deletes: which
keys may be due at a cutoff (`Expiry`). The transaction layer checks each candidate's
current write time and stages the delete (`TaskStore.expire_keys`). Private to the engine.

`ExpiryHeap` (memory stores): a heap of (write time, key) of every write, staged or
restored. `ExpiryIndex` (RocksDB stores): index records in the database itself, without a
per-entry heap in memory:

    b"x" + be64(time + 2**63) + be64(seq) -> orjson list of keys

Each write of a batch of values (a commit or a restore batch) adds one index record listing
the keys it gave values, at the largest write time among them. `expire` (cutoff = stream
time - retention) reads index records in key order from a lower bound while their time is
below the cutoff (one seek when nothing is due) and hands their keys to the store, which
deletes those whose current entry was written before the cutoff (one multi-get per record).
An entry thus expires no earlier than its retention and at most one index record's time
spread later (a commit interval's, or a restore batch's); an entry written since the last
commit waits for its index record. The record itself is deleted in a later commit once
every key that was staged when it was read (in the overlay, or expired by it) has been in
a committed batch: each committed value comes with an index record of its own, so a durable
entry always has one. A record is read once per process until its deletion is committed
(tracked in memory). Keys written while the store had no retention have no index record
and never expire.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final, Protocol

import orjson

from processors.engine._store_backend import write_time

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch

__all__ = ["ExpiringStore", "Expiry", "ExpiryHeap", "ExpiryIndex"]

INDEX_PREFIX: Final = b"x"
_BIAS: Final = 1 << 63  # signed time -> order-preserving unsigned


class ExpiringStore(Protocol):
    """What an `Expiry` needs of the store it serves (`TaskStore`)."""

    def expire_keys(self, keys: Iterable[str], cutoff_ms: int) -> int:
        """Stage deletes of those `keys` (each counted once) last written before
        `cutoff_ms`; how many."""

    def is_staged(self, key: str) -> bool:
        """Whether `key` has a staged (uncommitted) write or delete."""


class Expiry(ABC):
    """Finds the keys a cutoff may expire; told of the writes that can make keys due."""

    def staged(self, key: str, time_ms: int) -> None:  # noqa: B027 - a hook, empty by default
        """A handler staged a value for `key` written at `time_ms`."""

    def restored(self, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:  # noqa: B027
        """Changelog records read back were applied to the backend."""

    @abstractmethod
    def expire(self, cutoff_ms: int, store: ExpiringStore) -> int:
        """Stage (through `store`) the deletes of entries last written before `cutoff_ms`;
        how many. Called between records."""


class ExpiryHeap(Expiry):
    """(write time, key) of every write in a heap; a key rewritten later is popped early
    and kept by the store's check of its current write time."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def staged(self, key: str, time_ms: int) -> None:
        heapq.heappush(self._heap, (time_ms, key))

    def restored(self, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            if key is not None and value is not None:
                heapq.heappush(self._heap, (write_time(value), key.decode()))

    def expire(self, cutoff_ms: int, store: ExpiringStore) -> int:
        heap = self._heap
        due = []
        while heap and heap[0][0] < cutoff_ms:
            due.append(heapq.heappop(heap)[1])
        return store.expire_keys(due, cutoff_ms) if due else 0


def _record_key(time_ms: int, seq: int) -> bytes:
    return INDEX_PREFIX + (time_ms + _BIAS).to_bytes(8, "big") + seq.to_bytes(8, "big")


class ExpiryIndex(Expiry):
    """The expiry index records of one RocksDB store (module docstring). The backend adds
    and releases records in its write batches (`add`, `release`); `expire` reads them."""

    def __init__(self, db: Rdict, *, indexing: bool, next_seq: int, live_records: int) -> None:
        self._db = db
        self.indexing = indexing
        """Whether written values get index records (the store has a retention)."""
        self.next_seq = next_seq
        """The next record's sequence number (never reused, even if a write fails)."""
        self.live_records = live_records
        """Index records in the database (for the size estimate)."""
        self._waiting: dict[bytes, set[str]] = {}
        """Index records read by `expire` -> the staged keys each waits for."""
        self._scan_from = INDEX_PREFIX
        """Every live index record not read yet sorts at or above this key."""

    def add(self, batch: WriteBatch, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Put the index record of `records` (key, value) into `batch`."""
        if not self.indexing or not records:
            return
        latest = max(write_time(value) for _, value in records)
        record_key = _record_key(latest, self.next_seq)
        self.next_seq += 1
        self.live_records += 1
        batch.put(record_key, orjson.dumps([key.decode() for key, _ in records]))
        self._scan_from = min(self._scan_from, record_key)  # an old time may sort below

    def release(self, batch: WriteBatch, committed_keys: set[str]) -> Callable[[], None]:
        """Delete in `batch` the read records whose waits `committed_keys` complete; the
        function to call once the batch is written."""
        done = []
        for record_key, waiting in self._waiting.items():
            waiting -= committed_keys
            if not waiting:
                batch.delete(record_key)
                done.append(record_key)
        self.live_records -= len(done)

        def forget() -> None:
            for record_key in done:
                del self._waiting[record_key]

        return forget

    def expire(self, cutoff_ms: int, store: ExpiringStore) -> int:
        # every record key of a time below the cutoff sorts below this bound
        bound = INDEX_PREFIX + max(0, cutoff_ms + _BIAS).to_bytes(8, "big")
        waiting = self._waiting
        expired = 0
        it = self._db.iter()
        it.seek(self._scan_from)
        while it.valid():
            record_key: bytes = it.key()
            if record_key >= bound:  # also past the index range
                break
            if record_key not in waiting:
                keys: list[str] = orjson.loads(it.value())
                expired += store.expire_keys(keys, cutoff_ms)
                waiting[record_key] = {key for key in keys if store.is_staged(key)}
            it.next()
        del it
        self._scan_from = bound  # every record below was read; `add` lowers it for new ones
        return expired

    def clear(self) -> None:
        self._waiting.clear()
