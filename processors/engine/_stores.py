"""The in-memory store: `MemoryBackend`, a dict of committed changelog values per (task,
store), and `MemoryStore`, the transaction layer (`_store_transaction.py`) over it with an
in-memory expiry heap. Private to the engine.

`TaskStore` and `ChangelogEntry` are re-exported: the engine's modules name a store kind's
module, this one, for both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from processors.engine._clock import wall_ms
from processors.engine._store_backend import ChangelogEntry, Checkpoint, StoreBackend
from processors.engine._store_expiry import ExpiryHeap
from processors.engine._store_transaction import TaskStore
from processors.engine.api import StoreSpec

__all__ = ["ChangelogEntry", "MemoryBackend", "MemoryStore", "TaskStore"]


class MemoryBackend(StoreBackend):
    """Committed entries in a dict (store key -> changelog value); gone with the process."""

    counts_exactly = True

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        # empty: a restore from the beginning starts now
        self._checkpoint = Checkpoint(
            changelog_offset=0, unconfirmed_from=None, synced_ms=wall_ms()
        )

    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    def get(self, key: str) -> bytes | None:
        return self._values.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = self._values
        return [values.get(key) for key in keys]

    def items(self) -> Iterator[tuple[str, bytes]]:
        yield from list(self._values.items())  # a snapshot: the caller may write meanwhile

    def write(
        self, records: Sequence[tuple[bytes | None, bytes | None]], checkpoint: Checkpoint
    ) -> None:
        values = self._values
        for key, value in records:
            if key is None:
                continue
            if value is None:
                values.pop(key.decode(), None)
            else:
                values[key.decode()] = value
        self._checkpoint = checkpoint

    def count(self) -> int:
        return len(self._values)

    def close(self) -> None:
        self._values.clear()


class MemoryStore(TaskStore):
    """A task's store held in memory: the transaction layer over a `MemoryBackend`."""

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec, MemoryBackend(), ExpiryHeap())
