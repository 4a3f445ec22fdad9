"""What a store keeps underneath its transaction layer (`_store_transaction.py`): the
`StoreBackend` contract (committed changelog values as bytes, and the checkpoint they
reflect) and the changelog record format both sides share. Private to the engine.

Changelog record format (compacted topic, one partition per task): key = the store key
(UTF-8), value = `orjson([write_time_ms, value])`, or a tombstone (null value) for a delete.
The write time is the stream time at which the entry was last written; expiry and restore
both use it. A backend stores the value bytes as they are (a restore never decodes them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["ChangelogEntry", "Checkpoint", "StoreBackend", "write_time"]

ChangelogEntry = tuple[bytes, bytes | None]
"""(key, `orjson([write_time_ms, value])` or None for a tombstone): one changelog record."""


def write_time(raw: bytes) -> int:
    """The write time of a changelog value, read without decoding the value: `[t,...]`."""
    return int(raw[1 : raw.find(b",")])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The changelog position a backend's committed values reflect (`TaskStore` explains
    each field); a durable backend writes it atomically with the values."""

    changelog_offset: int
    unconfirmed_from: int | None
    synced_ms: int
    written_ms: int | None = None
    """Wall-clock time the checkpoint was written (None: never written)."""


class StoreBackend(ABC):
    """The committed entries of one (task, store) as changelog value bytes, and their
    checkpoint. No staging, undo or dirty keys: the transaction layer above does those and
    writes here only what a committed transaction or a restore read back."""

    counts_exactly: bool
    """Whether `count` is exact (then `len(store)` also counts staged writes); else it is
    an estimate of the committed entries alone."""

    @abstractmethod
    def checkpoint(self) -> Checkpoint:
        """The checkpoint the backend holds (as of opening it, or of the last `write`)."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The entry's changelog value, None if absent (also for a key that is not a str)."""

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """`get` of each key, in one call."""

    @abstractmethod
    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every committed entry (key, changelog value)."""

    @abstractmethod
    def write(
        self, records: Sequence[tuple[bytes | None, bytes | None]], checkpoint: Checkpoint
    ) -> None:
        """Apply changelog records in order (key None: skipped; value None: delete) and
        store `checkpoint`, atomically where the backend is durable."""

    @abstractmethod
    def count(self) -> int:
        """How many committed entries (see `counts_exactly`)."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend; closing twice is harmless."""
