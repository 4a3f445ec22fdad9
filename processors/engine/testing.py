"""Run a processor's handler without Kafka, with the engine's own in-memory stores, the
same per-record rollback and the same stream time, for unit tests:
`LocalRun(PROCESSOR).feed(record)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from processors.engine._clock import StreamClock, wall_ms
from processors.engine._stores import MemoryStore
from processors.engine.api import InputRecord, OutputRecord, Processor, Store
from runtime.settings import ProcessorSettings

__all__ = ["LocalRun", "input_record"]

_DEFAULT_SKEW_MS: int = ProcessorSettings.model_fields["max_clock_skew_ms"].default


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
    """One task's worth of stores and the handler, as the engine runs them: the same
    stores (with their size limits), the same per-record rollback, the same stream time
    (with the clock-skew guard: `wall` is the wall clock in epoch ms, a test may fix it)."""

    def __init__(
        self,
        processor: Processor,
        *,
        max_clock_skew_ms: int = _DEFAULT_SKEW_MS,
        wall: Callable[[], int] = wall_ms,
    ) -> None:
        self.processor = processor
        self.stores = {spec.name: MemoryStore(spec) for spec in processor.stores}
        self.clock = StreamClock(max_clock_skew_ms, wall)

    @property
    def stream_time(self) -> int:
        return self.clock.time_ms

    def store(self, name: str) -> Store:
        return self.stores[name]

    def feed(self, record: InputRecord) -> list[OutputRecord]:
        """Handle one record; a handler exception propagates after its writes are undone."""
        if self.clock.advance(record.timestamp_ms, self.clock.horizon()):
            for store in self.stores.values():
                store.now_ms = self.clock.time_ms
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
        return sum(store.expire(self.clock.time_ms) for store in self.stores.values())
