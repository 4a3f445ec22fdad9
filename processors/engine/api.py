"""What a processor declares and what its handler sees: the engine's public contract.

A processor is data: input topics, output topics, named state stores, and a handler from
(record, state) to output records. The handler does no I/O; the engine consumes, decodes
headers, gives the handler the stores of the record's partition, publishes what it returns
and commits it all together (see `processors.engine` for the guarantees). A handler that
raises sends the record to the processor's DLQ; store writes it made for that record are
discarded.

Topic names here are logical registry names (`schemas.registry`); the engine adds the
deployment's `WECOM_STREAM_TOPIC_PREFIX`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

__all__ = [
    "STORE_MAX_MESSAGE_BYTES",
    "Context",
    "Handler",
    "InputRecord",
    "JsonValue",
    "OutputRecord",
    "Processor",
    "Store",
    "StoreSpec",
]

JsonValue = Any
"""A value orjson can serialize: dict, list, str, int, float, bool or None."""


class InputRecord(NamedTuple):
    """One consumed record, headers decoded. `topic` is the logical name (prefix removed).

    Immutable records are NamedTuples rather than frozen dataclasses: the engine builds one
    per consumed record and a handler one per output, and a frozen dataclass's `__init__`
    (one `object.__setattr__` per field) cost 0.77 µs per record against 0.19 µs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]
    timestamp_ms: int


class OutputRecord(NamedTuple):
    """One record to publish. A model value is serialized with `model_dump_json()`."""

    topic: str
    key: bytes | str | None
    value: bytes | BaseModel | None
    headers: Sequence[tuple[str, bytes]] = ()


class Store(ABC):
    """A key-value state store scoped to one input partition; values are JSON-able.

    Writes are staged and reach the store's compacted changelog at the next commit, in the
    same transaction as the outputs and input offsets (exactly-once mode).
    """

    @abstractmethod
    def get(self, key: str, default: JsonValue = None) -> JsonValue: ...

    @abstractmethod
    def set(self, key: str, value: JsonValue) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def items(self) -> Iterator[tuple[str, JsonValue]]:
        """Every entry of this partition (for maintenance; not for per-record lookups)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


STORE_MAX_MESSAGE_BYTES = 1024 * 1024
"""Default `max.message.bytes` of a store's changelog topic: 1 MiB (see `StoreSpec`)."""
COMPRESSION_TYPES = (None, "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A named store. `retention_ms`: entries not written for that long, measured in stream
    time (the largest record timestamp seen on the partition, see `docs/design.md`), are
    deleted by the engine.

    `max_message_bytes` and `compression_type` are its changelog topic's (created so, and
    checked by `wecom-stream topics create`). One entry is one changelog record (key +
    `[write_time, value]` JSON), so `max_message_bytes` bounds an entry: a `set` whose
    record would not fit raises `StoreRecordTooLargeError` before anything is written, and
    the input goes to the DLQ. 1 MiB by default: Kafka's own default, under every client's
    fetch size, and far above what a well-bounded entry needs (a processor bounds its own
    entries below it, e.g. by capping a list). zstd by default: the smallest changelog and
    the cheapest codec measured on the processors' entries (docs/design.md, "Record size
    limits")."""

    name: str
    retention_ms: int | None = None
    max_message_bytes: int = STORE_MAX_MESSAGE_BYTES
    compression_type: str | None = "zstd"

    def __post_init__(self) -> None:
        if self.compression_type not in COMPRESSION_TYPES:
            raise ValueError(
                f"store {self.name!r}: compression_type must be one of {COMPRESSION_TYPES}"
            )
        if self.max_message_bytes < 64 * 1024:
            raise ValueError(f"store {self.name!r}: max_message_bytes must be at least 64 KiB")


class Context(Protocol):
    """What a handler gets besides the record: the stores of the record's partition."""

    def store(self, name: str) -> Store: ...


Handler = Callable[[InputRecord, Context], Iterable[OutputRecord]]


@dataclass(frozen=True, slots=True)
class Processor:
    """A processor declaration. Inputs read together must be co-partitioned (same count)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    handle: Handler
    stores: tuple[StoreSpec, ...] = ()
    compression_type: str | None = None
    """Producer compression for this processor's outputs (e.g. `gzip`); None: uncompressed."""
    state_version: int = 1
    """The layout of this processor's state (store keys and values). Bumped when a new
    layout cannot read the old one: the processor is then a new application, with its own
    consumer group and changelogs (`Names`), which reads its inputs from the beginning and
    rebuilds its state; the old group's state is never read with the new layout."""

    def __post_init__(self) -> None:
        if self.state_version < 1:
            raise ValueError(f"state_version of {self.name} must be 1 or more")
