"""The largest record each ingress topic takes, known without asking Kafka: the topic's
`max.message.bytes` in the registry (what `topics create` sets), compared with the size of
the record batch Kafka would receive for the record alone."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ingress._frames import SpoolRecord
from schemas.registry import REGISTRY

__all__ = ["BROKER_DEFAULT_MAX_MESSAGE_BYTES", "oversize"]

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default `message.max.bytes`, for a topic the registry sets no limit on."""
_LIMITS = {
    spec.name: spec.max_message_bytes or BROKER_DEFAULT_MAX_MESSAGE_BYTES
    for spec in REGISTRY
    if spec.writer == "ingress"
}
_CHEAP = 8 * 1024
"""Bytes of headers and batch overhead no ingress record comes near: a record this far below
its limit needs no exact count (headers are bounded: ids ≤ 256 characters, `tracestate`
≤ 512)."""


def oversize(topic: str, record: SpoolRecord) -> int | None:
    """The limit of logical topic `topic` when `record` would exceed it, else None."""
    limit = _LIMITS[topic]
    if len(record.value) + len(record.key or b"") + _CHEAP < limit:
        return None
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        record.key, record.value, list(record.headers)
    )
    return limit if size > limit else None
