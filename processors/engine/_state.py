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
`changelog_offset`; records other owners committed meanwhile lie after that offset and are
replayed. A store released after a failure is closed: a memory store is gone (the task
restores from the beginning), a disk store reopens at its last checkpoint, which never
holds uncommitted writes (`_disk_store.py`).

Disk stores live in `<state_dir>/<group>/instance-<i>/<partition>/<store>`: one directory
tree per group member (`--instances N` children share a state dir without sharing a
database; in Kubernetes each pod has its own volume). A checkpoint older than the
changelog's `delete.retention.ms` (Kafka's default, 1 day: our changelogs do not set it) is
not trusted: compaction may have removed tombstones written after it, so the store is
wiped and restored from the beginning.

A process holds its instance directory under an exclusive lock (`runtime.dirlock`) while it
runs: a second process started on the same directory (two `wecom-stream process NAME` with
one `WECOM_STREAM_STATE_DIR`, both instance 0) exits at once with a one-line error instead
of joining the group and failing every restore on RocksDB's own lock, which kept the whole
group rebalancing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from processors.engine._disk_store import DiskStore
from processors.engine._stores import MemoryStore, TaskStore
from processors.engine.api import Processor, StoreSpec
from runtime.dirlock import lock_directory
from runtime.errors import ConfigError
from runtime.logs import get_logger
from runtime.settings import StoreKind

__all__ = ["TOMBSTONE_RETENTION_MS", "StateDirInUseError", "StateManager"]

_log = get_logger(__name__)
TOMBSTONE_RETENTION_MS = 24 * 60 * 60 * 1000
"""The changelogs' `delete.retention.ms` (Kafka's default): how long compaction keeps a
tombstone, so how old a local checkpoint may be and still be caught up."""


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
    ) -> None:
        self.processor = processor
        self.kind = kind
        self.root = root
        """`<state_dir>/<group>/instance-<i>` for disk stores."""
        if kind == "disk" and root is None:
            raise ValueError("disk stores need a state directory")
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
        from the local checkpoint, if any and recent enough) or new."""
        kept = self._kept.pop(partition, None)
        if kept is not None:
            return kept
        return {spec.name: self._open(partition, spec) for spec in self.processor.stores}

    def _path(self, partition: int, spec: StoreSpec) -> Path:
        assert self.root is not None
        return self.root / str(partition) / spec.name

    def _open(self, partition: int, spec: StoreSpec) -> TaskStore:
        if self.kind == "memory":
            return MemoryStore(spec)
        store = DiskStore.open(self._path(partition, spec), spec)
        saved = store.checkpoint_time_ms
        age_ms = None if saved is None else int(time.time() * 1000) - saved
        if age_ms is not None and age_ms > TOMBSTONE_RETENTION_MS:
            _log.warning(
                "local_state_stale_rebuilding",
                partition=partition,
                store=spec.name,
                age_h=round(age_ms / 3_600_000, 1),
            )
            store.close()
            return self.new_store(partition, spec)
        return store

    def new_store(self, partition: int, spec: StoreSpec) -> TaskStore:
        """An empty store (also to rebuild one that cannot be trusted)."""
        if self.kind == "memory":
            return MemoryStore(spec)
        path = self._path(partition, spec)
        DiskStore.destroy(path)
        return DiskStore.open(path, spec)

    def release(self, partition: int, stores: dict[str, TaskStore], *, clean: bool) -> None:
        """The task is revoked or its member closed. `clean`: every store holds exactly the
        committed changelog before its `changelog_offset` (no uncommitted writes)."""
        if clean:
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
