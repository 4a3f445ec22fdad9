"""One consumed record decoded once for tail (key, headers, JSON value), and its JSON line:
the `--json` format, unchanged since the first `tail`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.cloudevents import header_map

__all__ = ["RecordView", "record_line"]


@dataclass(frozen=True, slots=True)
class RecordView:
    """What tail shows of a record: a JSON value is decoded, anything else kept as text."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: str | None
    headers: dict[str, str]
    value: Any
    is_json: bool

    @classmethod
    def of(cls, record: Any) -> RecordView:
        """Decode an aiokafka `ConsumerRecord` (or anything with the same attributes)."""
        is_json = True
        try:
            value: Any = orjson.loads(record.value) if record.value is not None else None
        except orjson.JSONDecodeError:
            value, is_json = record.value.decode("utf-8", "replace"), False
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            key=record.key.decode("utf-8", "replace") if record.key is not None else None,
            headers=header_map(record.headers),
            value=value,
            is_json=is_json,
        )

    def json_line(self) -> bytes:
        """The record as one JSON object (no newline)."""
        return orjson.dumps(
            {
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "timestamp": self.timestamp,
                "key": self.key,
                "headers": self.headers,
                "value": self.value,
            }
        )


def record_line(record: Any) -> bytes:
    """One record as a JSON line; a JSON value is embedded, anything else kept as text."""
    return RecordView.of(record).json_line()
