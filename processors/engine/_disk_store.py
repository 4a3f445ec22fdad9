"""The disk store: `RocksDBBackend`, one RocksDB (rocksdict, raw bytes) per (task, store)
holding the store's committed entries, its changelog checkpoint and its expiry index, and
`DiskStore`, the transaction layer (`_store_transaction.py`) over it. Private to the engine.

What it owns
    The directory given to `DiskStore.open` (the engine picks one per task and store).
    The semantics (per-record undo, dirty keys, `changelog_batch` with latest values or
    tombstones, retention by stream time) are the transaction layer's, shared with the
    memory store.

Exactly-once: the database only ever holds committed state
    Handler writes and expiry deletes stay in the transaction layer's overlay. Only
    `committed` (the transaction carrying them committed) and `restore_batch` (committed
    changelog records) write to the database, each with its entries, index changes and the
    new checkpoint in ONE `WriteBatch`, which RocksDB applies atomically (one WAL record,
    replayed whole or not at all; a torn tail record is dropped). After a SIGKILL
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
                        (`_store_expiry.ExpiryIndex`)

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
from processors.engine._rocksdb_options import rocksdb_options
from processors.engine._store_backend import Checkpoint, StoreBackend
from processors.engine._store_expiry import ExpiryIndex
from processors.engine._store_transaction import TaskStore
from processors.engine.api import StoreSpec

__all__ = ["DiskStore", "RocksDBBackend"]

_ENTRY: Final = b"k"
_CHECKPOINT: Final = b"m"


class RocksDBBackend(StoreBackend):
    """The committed entries, checkpoint and expiry index of one store in a RocksDB
    database (module docstring). Open with `RocksDBBackend.open(path, indexing=...)`."""

    counts_exactly = False

    def __init__(self, db: Rdict, *, indexing: bool) -> None:
        """`indexing`: give written values expiry index records (the store has a retention)."""
        self._db: Rdict | None = db
        self._get: Callable[..., Any] = db.get  # bytes or list[bytes] -> value(s) or None
        self._write_options = rocksdict.WriteOptions()  # sync=False, WAL on
        raw = db.get(_CHECKPOINT)
        stored = {} if raw is None else orjson.loads(raw)
        offset = stored.get("offset", 0)
        written_ms = stored.get("time_ms")
        self._checkpoint = Checkpoint(
            changelog_offset=offset,
            unconfirmed_from=stored.get("unconfirmed", offset - 1 if offset else None),
            # a checkpoint written before `synced_ms` existed: its time is when it was in
            # sync (those only came from commits); none: an empty store, starting now
            synced_ms=stored.get("synced_ms", written_ms or wall_ms()),
            written_ms=written_ms,
        )
        self.index = ExpiryIndex(
            db,
            indexing=indexing,
            next_seq=stored.get("seq", 0),
            live_records=stored.get("index", 0),
        )

    @classmethod
    def open(cls, path: Path, *, indexing: bool) -> RocksDBBackend:
        """Open (or create) the database at `path`."""
        path.mkdir(parents=True, exist_ok=True)
        opts = rocksdb_options()
        # The default column family's options are given explicitly: for an existing DB,
        # rocksdict otherwise reloads them from its OPTIONS file, which cannot record the
        # bloom filter or the shared cache (measured: no filter, an 8 MiB private cache).
        return cls(Rdict(str(path), opts, column_families={"default": opts}), indexing=indexing)

    @staticmethod
    def destroy(path: Path) -> None:
        """Delete a (closed) database and its directory."""
        if path.exists():
            Rdict.destroy(str(path), rocksdb_options())
            shutil.rmtree(path, ignore_errors=True)

    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    def get(self, key: str) -> bytes | None:
        try:
            return cast("bytes | None", self._get(_ENTRY + key.encode()))
        except AttributeError:  # not a str: never stored
            return None

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return cast("list[bytes | None]", self._get([_ENTRY + key.encode() for key in keys]))

    def items(self) -> Iterator[tuple[str, bytes]]:
        assert self._db is not None, "store is closed"
        rows = cast("Iterator[tuple[bytes, bytes]]", self._db.items(from_key=_ENTRY))
        for db_key, raw in rows:
            if db_key[:1] != _ENTRY:
                break
            yield db_key[1:].decode(), raw

    def count(self) -> int:
        """An estimate of the committed entries: RocksDB's `estimate-num-keys` less the
        index records and the checkpoint (Kafka Streams' `approximateNumEntries` is that
        property too): a key overwritten since the last compaction counts twice, a
        tombstone not yet compacted away may count -1, staged writes not at all. An exact
        count (a multi-get per applied batch) halved the restore rate. Each checkpoint is a
        delete and a put, which the estimate counts as nothing."""
        assert self._db is not None, "store is closed"
        keys = self._db.property_int_value("rocksdb.estimate-num-keys") or 0
        return max(0, keys - self.index.live_records - 1)

    def write(
        self, records: Sequence[tuple[bytes | None, bytes | None]], checkpoint: Checkpoint
    ) -> None:
        """The records, the index record of their values, and the checkpoint in one
        `WriteBatch`. A write of the store's own commit (`unconfirmed_from` set) also
        deletes the index records read by `expire` whose staged keys it commits."""
        if self._db is None:
            raise RuntimeError("store is closed")
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        values: list[tuple[bytes, bytes]] = []
        for key, value in records:
            if key is None:
                continue
            if value is None:
                delete(_ENTRY + key)
            else:
                put(_ENTRY + key, value)
                values.append((key, value))
        self.index.add(batch, values)
        forget_released: Callable[[], None] | None = None
        if checkpoint.unconfirmed_from is not None:
            written = {key.decode() for key, _ in records if key is not None}
            forget_released = self.index.release(batch, written)
        now = int(time.time() * 1000)
        stored = dict(offset=checkpoint.changelog_offset, unconfirmed=checkpoint.unconfirmed_from)
        stored.update(time_ms=now, synced_ms=checkpoint.synced_ms)
        stored.update(seq=self.index.next_seq, index=self.index.live_records)
        batch.delete(_CHECKPOINT)  # with the put, nets 0 in `estimate-num-keys` (`count`)
        batch.put(_CHECKPOINT, orjson.dumps(stored))
        self._db.write(batch, self._write_options)
        self._checkpoint = Checkpoint(
            checkpoint.changelog_offset, checkpoint.unconfirmed_from, checkpoint.synced_ms, now
        )
        if forget_released is not None:
            forget_released()

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self.index.clear()


class DiskStore(TaskStore):
    """A task's store in RocksDB: the transaction layer over a `RocksDBBackend`. Open with
    `DiskStore.open(path, spec)`."""

    def __init__(self, backend: RocksDBBackend, spec: StoreSpec) -> None:
        super().__init__(spec, backend, backend.index)
        self._rocksdb = backend

    @classmethod
    def open(cls, path: Path, spec: StoreSpec) -> DiskStore:
        """Open (or create) the store's database at `path`."""
        return cls(RocksDBBackend.open(path, indexing=spec.retention_ms is not None), spec)

    @staticmethod
    def destroy(path: Path) -> None:
        """Delete a (closed) store's database and its directory."""
        RocksDBBackend.destroy(path)

    @property
    def checkpoint_time_ms(self) -> int | None:
        """Wall-clock time the checkpoint was last written (None: never)."""
        return self._rocksdb.checkpoint().written_ms
