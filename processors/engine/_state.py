"""Which stores a task gets when it is assigned, and what is kept when it is revoked.
Private to the engine.

aiokafka rebalances eagerly: every rebalance revokes every partition of every member and
assigns them anew, so most tasks come straight back to the member that had them. A store
released cleanly (its last commit succeeded, or it was revoked while restoring: it then
holds a prefix of the committed changelog) is kept by its `changelog_offset`, and a task
that comes back catches up from there instead of replaying its whole changelog. That is
safe whatever happened in between: after the new owner's producer fenced any other, the
committed changelog is the truth, and the store is exactly its prefix before
`changelog_offset`; records other owners committed meanwhile lie after that offset and are
replayed. A store released after a failure is discarded (memory) or reopened from its last
checkpoint (disk), which never holds uncommitted writes.
"""

from __future__ import annotations

from processors.engine._stores import MemoryStore, TaskStore
from processors.engine.api import Processor, StoreSpec

__all__ = ["StateManager"]


class StateManager:
    """Stores per task for one processor process, kept across members and rebalances."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self._kept: dict[int, dict[str, TaskStore]] = {}

    def open(self, partition: int) -> dict[str, TaskStore]:
        """The task's stores: those kept from an earlier assignment, else new ones."""
        kept = self._kept.pop(partition, None)
        if kept is not None:
            return kept
        return {spec.name: self.new_store(partition, spec) for spec in self.processor.stores}

    def new_store(self, partition: int, spec: StoreSpec) -> TaskStore:
        """An empty store (also to rebuild one whose changelog was recreated)."""
        return MemoryStore(spec)

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

    def kept(self) -> list[int]:
        return sorted(self._kept)
