"""Run a processor's handler without Kafka, with the engine's own in-memory stores and the
same per-record rollback, for unit tests: `LocalRun(PROCESSOR).feed(record)`."""

from __future__ import annotations

from collections.abc import Mapping

from processors.engine._stores import MemoryStore
from processors.engine.api import InputRecord, OutputRecord, Processor, Store

__all__ = ["LocalRun", "input_record"]


def input_record(
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    partition: int = 0,
    offset: int = 0,
    timestamp_ms: int = 1_700_000_000_000,
) -> InputRecord:
    """An `InputRecord` with defaults for everything a test does not care about."""
    return InputRecord(topic, partition, offset, key, value, dict(headers or {}), timestamp_ms)


class LocalRun:
    """One task's worth of stores and the handler, as the engine runs them."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.stores = {spec.name: MemoryStore(spec) for spec in processor.stores}
        self.stream_time = 0

    def store(self, name: str) -> Store:
        return self.stores[name]

    def feed(self, record: InputRecord) -> list[OutputRecord]:
        """Handle one record; a handler exception propagates after its writes are undone."""
        self.stream_time = max(self.stream_time, record.timestamp_ms)
        for store in self.stores.values():
            store.now_ms = self.stream_time
        try:
            out = list(self.processor.handle(record, self))
        except BaseException:
            for store in self.stores.values():
                store.end_record(ok=False)
            raise
        for store in self.stores.values():
            store.end_record(ok=True)
        return out

    def expire(self) -> int:
        """Apply store retention at the current stream time (the engine does so per commit)."""
        return sum(store.expire(self.stream_time) for store in self.stores.values())
