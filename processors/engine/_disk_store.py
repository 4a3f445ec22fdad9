"""A disk-backed state store: one RocksDB (rocksdict, raw bytes) per (task, store) holding
the store's committed state and its changelog checkpoint. Private to the engine.

What it owns
    The directory given to `DiskStore.open` (the engine picks one per task and store).
    The semantics are `MemoryStore`'s (`_stores.py`): per-record rollback, dirty keys,
    `changelog_batch` with latest values or tombstones, retention by stream time.

Exactly-once: the database only ever holds committed state
    Handler writes (`set`/`delete`) and expiry deletes go to an in-memory overlay (key ->
    (value, write time, changelog bytes), or None for a staged delete), with per-record
    undo; reads look at the overlay, then the database. A value is encoded when set (mutate
    a value and set it again, never in place). `changelog_batch` hands the dirty keys'
    overlay entries to the engine and keeps the overlay. Only `committed` (the transaction
    carrying them committed) and `restore_batch` (committed changelog records) write to the
    database, each with its entries, index changes and the new checkpoint in ONE
    `WriteBatch`, which RocksDB applies atomically (one WAL record, replayed whole or not at
    all; a torn tail record is dropped). `committed` then drops the overlay entries the
    database now holds (those not written again since `changelog_batch`). After a SIGKILL
    - before `committed`: the database is at the previous checkpoint; the staged writes die
      with the process and the aborted transaction's changelog records are not read back
      (`read_committed`): the engine catches up from the checkpoint's offset;
    - during it: the batch is in the WAL (new state and offset) or not (the old ones);
    - after it: the new checkpoint; later staged writes are lost with the process.
    The WAL is on, without an fsync per write (`sync=False`): a write reaches the OS page
    cache, which outlives the process. An OS crash or power loss may lose the newest
    checkpoints (the store then catches up from an older offset) but never mixes states.
    `committed` runs after the transaction committed; should Kafka still undo it, the
    restore's check of `unconfirmed_from` rebuilds the store (`_restore.py`).

Key layout (one-byte prefixes: each kind is one contiguous key range)
    b"k" + UTF-8 key -> the changelog value as is, `orjson([write_time_ms, value])` (restore
                        stores record bytes without decoding values)
    b"m"             -> orjson {"offset", "unconfirmed", "time_ms", "synced_ms", "seq",
                        "index"}: the checkpoint (`changelog_offset`, `unconfirmed_from`
                        (absent in older ones: `offset - 1`), its wall time, `synced_ms`
                        as of that write, the next index sequence number, the live index
                        record count)
    b"x" + be64(time + 2**63) + be64(seq) -> orjson list of keys: an expiry index record

Expiry (with `StoreSpec.retention_ms` only), without a per-entry heap in memory
    Each `committed` / `restore_batch` writes one index record listing the keys it gave
    values, at the largest write time among them. `expire(stream_time)` (cutoff = stream
    time - retention) reads index records in key order from a lower bound while their time
    is below the cutoff (one seek when nothing is due) and stages a delete (overlay + dirty:
    a tombstone in the next changelog batch) of each listed key whose current entry was
    written before the cutoff (one multi-get per record). An entry thus expires no earlier
    than its retention and at most one index record's time spread later (a commit
    interval's, or a restore batch's); an entry written since the last commit waits for
    its index record. The record itself is deleted in a later `committed` batch once every
    key that was staged when it was read (in the overlay, or expired by it) has been in a
    committed batch: each committed value comes with an index record of its own, so a
    durable entry always has one. A record is read once per process until its deletion is
    committed (tracked in memory). Keys written while the store had no retention have no
    index record and never expire.

Options: `_rocksdb_options.py`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, cast

import orjson
import rocksdict
from rocksdict import Rdict, WriteBatch

from processors.engine._clock import wall_ms
from processors.engine._limits import usable_bytes
from processors.engine._rocksdb_options import rocksdb_options
from processors.engine._stores import ChangelogEntry, TaskStore
from processors.engine.api import JsonValue, StoreSpec

__all__ = ["DiskStore"]

_dumps = orjson.dumps
_loads = orjson.loads
_META: Final = b"m"
_INDEX: Final = b"x"
_BIAS: Final = 1 << 63  # signed time -> order-preserving unsigned
_HOT_MAX: Final = 20_000  # values kept in `_hot`; emptied when full (cheap, no LRU book-keeping)
_ABSENT: Final = object()  # "not in the overlay" (None in the overlay: a staged delete)

_Entry = tuple[JsonValue, int, bytes]  # (value, write time, changelog value bytes)


def _index_key(time_ms: int, seq: int) -> bytes:
    return _INDEX + (time_ms + _BIAS).to_bytes(8, "big") + seq.to_bytes(8, "big")


class DiskStore(TaskStore):
    """The committed state of one (task, store) in RocksDB plus an in-memory overlay of
    the writes not committed yet. Open with `DiskStore.open(path, spec)`."""

    def __init__(self, db: Rdict, spec: StoreSpec) -> None:
        self.spec = spec
        self.now_ms = 0
        self.record_limit = usable_bytes(spec.max_message_bytes, spec.compression_type)
        self._db: Rdict | None = db
        self._get: Callable[..., Any] = db.get  # bytes or list[bytes] -> value(s) or None
        self._wopts = rocksdict.WriteOptions()  # sync=False, WAL on
        self._over: dict[str, _Entry | None] = {}
        self._dirty: set[str] = set()
        self._undo: dict[str, object] = {}  # key -> its overlay entry before (or _ABSENT)
        self._hot: dict[str, JsonValue] = {}
        """Values read from the database lately (present keys only), so a hot key, e.g. a
        conversation's mode, costs a dict lookup instead of a RocksDB get (~7 µs)."""
        self._scanned: dict[bytes, set[str]] = {}  # index record -> keys it waits for
        self._low = _INDEX  # every live index record not read yet sorts at or above
        raw = db.get(_META)
        meta = {} if raw is None else _loads(raw)
        offset = self.changelog_offset = meta.get("offset", 0)
        self.unconfirmed_from = meta.get("unconfirmed", offset - 1 if offset else None)
        self.checkpoint_time_ms: int | None = meta.get("time_ms")
        # a checkpoint written before `synced_ms` existed: its time is when it was in sync
        # (those only came from commits); no checkpoint: an empty store, starting now
        self.synced_ms = meta.get("synced_ms", self.checkpoint_time_ms or wall_ms())
        self._index_records: int = meta.get("index", 0)  # live ones, for __len__
        self._seq: int = meta.get("seq", 0)

    @classmethod
    def open(cls, path: Path, spec: StoreSpec) -> DiskStore:
        """Open (or create) the store's database at `path`."""
        path.mkdir(parents=True, exist_ok=True)
        opts = rocksdb_options()
        # The default column family's options are given explicitly: for an existing DB,
        # rocksdict otherwise reloads them from its OPTIONS file, which cannot record the
        # bloom filter or the shared cache (measured: no filter, an 8 MiB private cache).
        return cls(Rdict(str(path), opts, column_families={"default": opts}), spec)

    @staticmethod
    def destroy(path: Path) -> None:
        """Delete a (closed) store's database and its directory."""
        if path.exists():
            Rdict.destroy(str(path), rocksdb_options())
            shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Close the database; staged, uncommitted writes are dropped."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self._over.clear()
        self._dirty.clear()
        self._undo.clear()
        self._scanned.clear()
        self._hot.clear()

    # ---------------------------------------------------------------- Store API
    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        entry = self._over.get(key, _ABSENT)
        if entry is _ABSENT:
            hot = self._hot.get(key, _ABSENT)
            if hot is not _ABSENT:
                return hot
            try:
                raw = self._get(b"k" + key.encode())
            except AttributeError:  # not a str: never stored
                return default
            if raw is None:
                return default
            value = _loads(raw)[1]
            if len(self._hot) >= _HOT_MAX:
                self._hot.clear()
            self._hot[key] = value
            return value
        return default if entry is None else entry[0]  # type: ignore[index]

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
        over = self._over
        if key not in self._undo:
            self._undo[key] = over.get(key, _ABSENT)
        over[key] = (value, now, raw)

    def delete(self, key: str) -> None:
        if key not in self:
            return
        if key not in self._undo:
            self._undo[key] = self._over.get(key, _ABSENT)
        self._over[key] = None

    def items(self) -> Iterator[tuple[str, JsonValue]]:
        over = list(self._over.items())
        staged = {key for key, _ in over}
        assert self._db is not None, "store is closed"
        rows = cast("Iterator[tuple[bytes, bytes]]", self._db.items(from_key=b"k"))
        for kk, raw in rows:
            if kk[:1] != b"k":
                break
            key = kk[1:].decode()
            if key not in staged:
                yield key, _loads(raw)[1]
        for key, entry in over:
            if entry is not None:
                yield key, entry[0]

    def __contains__(self, key: object) -> bool:
        entry = self._over.get(key, _ABSENT)  # type: ignore[call-overload]
        if entry is _ABSENT:
            if key in self._hot:
                return True
            return isinstance(key, str) and self._get(b"k" + key.encode()) is not None
        return entry is not None

    def __len__(self) -> int:
        """An estimate of the committed entries: RocksDB's `estimate-num-keys` less the
        index records and the checkpoint (Kafka Streams' `approximateNumEntries` is that
        property too): a key overwritten since the last compaction counts twice, a
        tombstone not yet compacted away may count -1, staged writes not at all. An exact
        count (a multi-get per applied batch) halved the restore rate. Each checkpoint is a
        delete and a put, which the estimate counts as nothing."""
        assert self._db is not None, "store is closed"
        keys = self._db.property_int_value("rocksdb.estimate-num-keys") or 0
        return max(0, keys - self._index_records - 1)

    # ---------------------------------------------------------------- engine side
    def end_record(self, ok: bool) -> None:
        """Keep (`ok`) or undo the writes made since the previous call."""
        undo = self._undo
        if not undo:
            return
        if ok:
            self._dirty.update(undo)
        else:
            over = self._over
            for key, previous in undo.items():
                if previous is _ABSENT:
                    over.pop(key, None)
                else:
                    over[key] = previous  # type: ignore[assignment]
        undo.clear()

    def expire(self, stream_time_ms: int) -> int:
        """Stage deletes of entries last written before `stream_time_ms - retention_ms`,
        found through the index records due; how many. Call it between records."""
        retention = self.spec.retention_ms
        if retention is None or self._db is None:
            return 0
        cutoff = stream_time_ms - retention
        bound = _INDEX + max(0, cutoff + _BIAS).to_bytes(8, "big")  # > keys of time < cutoff
        over, dirty, scanned, get = self._over, self._dirty, self._scanned, self._get
        expired = 0
        it = self._db.iter()
        it.seek(self._low)
        while it.valid():
            ik: bytes = it.key()
            if ik >= bound:  # also past the index range
                break
            if ik in scanned:
                it.next()
                continue
            wait: set[str] = set()  # staged keys: the record waits until they are committed
            stored = []
            for key in _loads(it.value()):
                entry = over.get(key, _ABSENT)
                if entry is _ABSENT:
                    stored.append(key)
                else:
                    wait.add(key)
                    if entry is not None and entry[1] < cutoff:  # type: ignore[index]
                        over[key] = None
                        dirty.add(key)
                        expired += 1
            if stored:
                raws = get([b"k" + key.encode() for key in stored])  # one multi-get
                for key, raw in zip(stored, raws, strict=True):
                    if raw is not None and int(raw[1 : raw.find(b",")]) < cutoff:  # [t,...]
                        over[key] = None
                        dirty.add(key)
                        wait.add(key)
                        expired += 1
            scanned[ik] = wait
            it.next()
        del it
        self._low = bound  # every record below was read; commits lower it for new ones
        return expired

    def changelog_batch(self) -> list[ChangelogEntry]:
        """(key, value-or-tombstone) of every dirty key, latest value only; clears the set."""
        over = self._over
        out = [
            (key.encode(), None if (entry := over.get(key)) is None else entry[2])
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
        """Write `entries` (from `changelog_batch`), the index records they release and the
        checkpoint `next_offset` (unconfirmed from `first_offset`) atomically; then drop the
        overlay entries the DB now has."""
        names = [key.decode() for key, _ in entries]
        self.synced_ms = wall_ms()  # the task's transaction committed: the store is the log
        batch = self._batch(entries)
        done = []
        if self._scanned:
            written = set(names)
            for ik, wait in self._scanned.items():
                wait -= written
                if not wait:
                    batch.delete(ik)
                    done.append(ik)
        self._write(batch, next_offset, -len(done), first_offset)
        over, dirty, undo, hot = self._over, self._dirty, self._undo, self._hot
        for name, (_, value) in zip(names, entries, strict=True):
            hot.pop(name, None)  # the database has a newer value
            entry = over.get(name, _ABSENT)
            if entry is _ABSENT or name in dirty or name in undo:
                continue  # written again since `changelog_batch`: still staged
            if (None if entry is None else entry[2]) == value:  # type: ignore[index]
                del over[name]
        for ik in done:
            del self._scanned[ik]

    def restore_batch(self, records: Sequence[ChangelogEntry], next_offset: int) -> None:
        """Apply committed changelog records and the checkpoint `next_offset` atomically.
        The store should have no staged writes (restore comes before processing)."""
        self._hot.clear()
        self._write(self._batch(records), next_offset, 0, None)

    def _batch(self, records: Sequence[tuple[bytes | None, bytes | None]]) -> WriteBatch:
        """A write batch with the records (key None: skipped) and their index record."""
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        indexing = self.spec.retention_ms is not None
        keys: list[bytes] = []
        values: list[bytes] = []
        for key, value in records:
            if key is None:
                continue
            if value is None:
                delete(b"k" + key)
            else:
                put(b"k" + key, value)
                if indexing:
                    keys.append(key)
                    values.append(value)
        if values:
            latest = max(int(v[1 : v.find(b",")]) for v in values)  # `[t,...]`: write time
            ik = _index_key(latest, self._seq)
            self._seq += 1  # never reused, even if the write fails
            self._index_records += 1
            put(ik, _dumps([key.decode() for key in keys]))
            self._low = min(self._low, ik)  # an old-time record may sort below the scan
        return batch

    def _write(
        self, batch: WriteBatch, next_offset: int, index_delta: int, unconfirmed: int | None
    ) -> None:
        if self._db is None:
            raise RuntimeError("store is closed")
        now = int(time.time() * 1000)
        self._index_records += index_delta
        meta = dict(offset=next_offset, unconfirmed=unconfirmed, time_ms=now)
        meta.update(synced_ms=self.synced_ms, seq=self._seq, index=self._index_records)
        batch.delete(_META)  # with the put, nets 0 in `estimate-num-keys` (see `__len__`)
        batch.put(_META, _dumps(meta))
        self._db.write(batch, self._wopts)
        self.changelog_offset = next_offset
        self.unconfirmed_from = unconfirmed
        self.checkpoint_time_ms = now
