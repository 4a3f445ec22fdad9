"""How large a record the engine may write to a topic, and the record batches that keep to
it: outputs, changelog records and DLQ records are all checked against their target
topic's `max.message.bytes` before they are sent. Private to the engine.

Why before: the broker refuses a batch over the topic's limit, which fails the whole
transaction; the member would restart, restore and process the same input again, for ever
(issue 31). A record that would not fit is refused while its input is being handled, so
the input goes to the DLQ (its store writes undone) and the partition moves on.

What "fits" means
    The broker checks a record *batch*, after compression, against `max.message.bytes`.
    The engine counts a record's key, value and headers (uncompressed) and allows
    `max.message.bytes` less `headroom`: 512 bytes for the batch header and the record's
    framing, plus the codec's worst-case expansion of incompressible data (zstd and lz4
    ~0.4 %, gzip less, snappy up to 1/6), and never more than the producers'
    `max_request_size`. Batches of several records are capped at the same size
    (`new_batch`), so a batch of small records fits too; a batch holds one record larger
    than that, alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from runtime.kafka import producer_config
from schemas.registry import by_name

__all__ = [
    "BROKER_DEFAULT_MAX_MESSAGE_BYTES",
    "OutputTooLargeError",
    "RecordTooLargeError",
    "StoreRecordTooLargeError",
    "declared_max_message_bytes",
    "new_batch",
    "record_bytes",
    "usable_bytes",
]

BROKER_DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_588
"""Kafka's default `message.max.bytes` (a topic without its own `max.message.bytes`)."""
_FRAMING: Final = 512
_EXPANSION_DIVISOR: Final = {None: 0, "zstd": 128, "lz4": 128, "gzip": 128, "snappy": 5}
"""Worst-case growth of incompressible data, as a fraction 1/n of the input: zstd's bound is
n/256, lz4's n/255, gzip's ~n/3000, snappy's (with xerial framing) ~n/6; rounded up."""
_MAX_REQUEST: Final[int] = producer_config("")["max_request_size"]
_BATCH_BYTES: Final[int] = producer_config("")["max_batch_size"]
_CODECS: Final = {
    None: DefaultRecordBatch.CODEC_NONE,
    "gzip": DefaultRecordBatch.CODEC_GZIP,
    "snappy": DefaultRecordBatch.CODEC_SNAPPY,
    "lz4": DefaultRecordBatch.CODEC_LZ4,
    "zstd": DefaultRecordBatch.CODEC_ZSTD,
}


class RecordTooLargeError(ValueError):
    """A record the engine was about to write would exceed its topic's limit; the input
    that produced it goes to the DLQ with this error.

    Operator action: the message names the topic (or store) and the sizes. Usually the
    input is abnormal (a poison record); if such records are legitimate, raise the
    topic's `max.message.bytes` (`kafka-configs --alter`), and restart the processor.
    """


class OutputTooLargeError(RecordTooLargeError):
    """An output record would exceed its topic's `max.message.bytes`."""


class StoreRecordTooLargeError(RecordTooLargeError):
    """A store write's changelog record would exceed its changelog topic's
    `max.message.bytes`: raised by `Store.set`, before the write is made."""


def usable_bytes(max_message_bytes: int, compression_type: str | None) -> int:
    """The largest record (key + value + headers, uncompressed) that fits a topic whose
    `max.message.bytes` is `max_message_bytes`, written with `compression_type`."""
    divisor = _EXPANSION_DIVISOR.get(compression_type, 5)
    expansion = -(-max_message_bytes // divisor) if divisor else 0
    return max(0, min(max_message_bytes, _MAX_REQUEST) - _FRAMING - expansion)


def declared_max_message_bytes(logical_topic: str) -> int:
    """A topic's limit as the registry declares it (when the broker's is not known)."""
    try:
        configured = by_name(logical_topic).max_message_bytes
    except KeyError:
        configured = None
    return configured or BROKER_DEFAULT_MAX_MESSAGE_BYTES


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]] = ()
) -> int:
    """What `usable_bytes` is compared with: key, value and header bytes."""
    size = len(key or b"") + len(value or b"")
    for name, header in headers:  # a loop, not sum() over a generator: per record
        size += len(name) + len(header)
    return size


def new_batch(compression_type: str | None, max_bytes: int, *, transactional: bool) -> Any:
    """An empty record batch for `AIOKafkaProducer.send_batch` with a codec of its own and
    at most `max_bytes` (or one record larger than that, alone). `create_batch()` would
    take the producer's codec and batch size, one for every topic the producer writes;
    `transactional` must match the producer (a transactional one rejects other batches)."""
    return BatchBuilder(
        min(_BATCH_BYTES, max_bytes), _CODECS[compression_type], is_transactional=transactional
    )
