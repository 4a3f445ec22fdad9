"""Which stores a task gets when it is assigned, and what is kept when it is revoked: in
memory (`MemoryStore`) or on disk (`DiskStore`, `WECOM_STREAM_STORE_KIND=disk`). Private
to the engine.

aiokafka rebalances eagerly: every rebalance revokes every partition of every member and
assigns them anew, so most tasks come straight back to the member that had them. A store
released cleanly (its last commit succeeded, or it was revoked while restoring: it then
holds a prefix of the committed changelog) is kept open by its `changelog_offset`, and a
task that comes back catches up from there instead of replaying its whole changelog. That
is safe whatever happened in between: after the new owner's producer fenced any other, the
committed changelog is the truth, and the store is exactly its prefix before
`changelog_offset` (the restore first confirms that the store's own last commit is in it:
`_restore.py`); records other owners committed meanwhile lie after that offset and are
replayed. A store released after a failure is closed: a memory store is gone (the task
restores from the beginning), a disk store reopens at its last checkpoint, which never
holds uncommitted writes (`_disk_store.py`).

Disk stores live in `<state_dir>/<group>/instance-<i>/<partition>/<store>`: one directory
tree per group member (`--instances N` children share a state dir without sharing a
database; in Kubernetes each pod has its own volume).

A store that has been away too long is not trusted, kept or opened from disk alike:
compaction removes a tombstone once it is older than the changelog's `delete.retention.ms`
(read from the topic at start-up; Kafka's default is 1 day), so a store that last held the
whole committed changelog (`TaskStore.synced_ms`) longer ago than that may have missed the
tombstones of keys another owner deleted meanwhile, and catching up would bring those keys
back. Such a store is wiped and restored from the beginning.

A process holds its instance directory under an exclusive lock (`runtime.dirlock`) while it
runs: a second process started on the same directory (two `wecom-stream process NAME` with
one `WECOM_STREAM_STATE_DIR`, both instance 0) exits at once with a one-line error instead
of joining the group and failing every restore on RocksDB's own lock, which kept the whole
group rebalancing.
"""

from __future__ import annotations

import os
from pathlib import Path

from processors.engine._clock import wall_ms
from processors.engine._disk_store import DiskStore
from processors.engine._limits import usable_bytes
from processors.engine._setup import PreparedTopics
from processors.engine._stores import MemoryStore, TaskStore
from processors.engine.api import Processor, StoreSpec
from runtime.dirlock import lock_directory
from runtime.errors import ConfigError
from runtime.logs import get_logger
from runtime.settings import StoreKind

__all__ = ["KAFKA_DELETE_RETENTION_MS", "StateDirInUseError", "StateManager"]

_log = get_logger(__name__)
KAFKA_DELETE_RETENTION_MS = 24 * 60 * 60 * 1000
"""Kafka's default `delete.retention.ms`, for a changelog whose config is not known (unit
tests; the engine reads each changelog's at start-up)."""


class StateDirInUseError(ConfigError):
    """Another live process holds this processor instance's state directory.

    Operator action: give each process its own `WECOM_STREAM_STATE_DIR` (in Kubernetes each
    pod has its own volume), or run several members of one process with `--instances N`.
    """


class StateManager:
    """Stores per task for one processor process, kept across members and rebalances."""

    def __init__(
        self,
        processor: Processor,
        kind: StoreKind = "memory",
        root: Path | None = None,
        changelogs: PreparedTopics | None = None,
    ) -> None:
        """`changelogs`: the changelog topics' actual limits and tombstone retention
        (without: each store's declared limit and Kafka's default retention)."""
        self.processor = processor
        self.kind = kind
        self.root = root
        """`<state_dir>/<group>/instance-<i>` for disk stores."""
        if kind == "disk" and root is None:
            raise ValueError("disk stores need a state directory")
        self._record_limits: dict[str, int] = {}
        self._retention_ms: dict[str, int] = {}
        for spec in processor.stores:
            actual = spec.max_message_bytes
            retention = KAFKA_DELETE_RETENTION_MS
            if changelogs is not None:
                actual = changelogs.max_message_bytes[changelogs.names.changelog(spec.name)]
                retention = changelogs.delete_retention_ms[spec.name]
            self._record_limits[spec.name] = usable_bytes(actual, spec.compression_type)
            self._retention_ms[spec.name] = retention
        self._kept: dict[int, dict[str, TaskStore]] = {}
        self._lock_fd: int | None = None
        if kind == "disk" and root is not None:
            self._lock_fd = lock_directory(root)
            if self._lock_fd is None:
                raise StateDirInUseError(
                    f"state directory {root} is in use by another process: give each process "
                    "its own WECOM_STREAM_STATE_DIR, or use --instances N"
                )

    def open(self, partition: int) -> dict[str, TaskStore]:
        """The task's stores: those kept from an earlier assignment, else opened (disk:
        from the local checkpoint, if any) or new; one that has been away longer than its
        changelog's tombstone retention is replaced by a new one (module docstring)."""
        kept = self._kept.pop(partition, None)
        stores = {}
        for spec in self.processor.stores:
            store = kept[spec.name] if kept is not None else self._open(partition, spec)
            if self._stale(partition, store, kept=kept is not None):
                store.close()
                store = self.new_store(partition, spec)
            store.record_limit = self._record_limits[spec.name]
            stores[spec.name] = store
        return stores

    def _stale(self, partition: int, store: TaskStore, *, kept: bool) -> bool:
        """Whether `store` was last in sync longer ago than its changelog keeps tombstones."""
        if store.changelog_offset == 0:
            return False  # empty: restored from the beginning anyway
        age_ms = wall_ms() - store.synced_ms
        retention_ms = self._retention_ms[store.spec.name]
        if age_ms <= retention_ms:
            return False
        _log.warning(
            "local_state_stale_rebuilding",
            partition=partition,
            store=store.spec.name,
            kept=kept,
            age_s=round(age_ms / 1000),
            delete_retention_s=round(retention_ms / 1000),
        )
        return True

    def _path(self, partition: int, spec: StoreSpec) -> Path:
        assert self.root is not None
        return self.root / str(partition) / spec.name

    def _open(self, partition: int, spec: StoreSpec) -> TaskStore:
        if self.kind == "memory":
            return MemoryStore(spec)
        return DiskStore.open(self._path(partition, spec), spec)

    def new_store(self, partition: int, spec: StoreSpec) -> TaskStore:
        """An empty store (also to rebuild one that cannot be trusted)."""
        store: TaskStore
        if self.kind == "memory":
            store = MemoryStore(spec)
        else:
            path = self._path(partition, spec)
            DiskStore.destroy(path)
            store = DiskStore.open(path, spec)
        store.record_limit = self._record_limits[spec.name]
        return store

    def release(
        self, partition: int, stores: dict[str, TaskStore], *, clean: bool, synced: bool
    ) -> None:
        """The task is revoked or its member closed. `clean`: every store holds exactly the
        committed changelog before its `changelog_offset` (no uncommitted writes);
        `synced`: and that is the whole changelog (the task was processing, not restoring:
        nobody else has written to it since it was fenced)."""
        if clean:
            if synced:
                now = wall_ms()
                for store in stores.values():
                    store.mark_synced(now)
            self._kept[partition] = stores
            return
        for store in stores.values():
            store.close()

    def close(self) -> None:
        for stores in self._kept.values():
            for store in stores.values():
                store.close()
        self._kept.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None
