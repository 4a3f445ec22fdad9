"""Dead-letter records: the input key and value unchanged, its headers kept, plus headers
naming the error and the source topic, partition and offset. Private to the engine.

A dead letter that would not fit the DLQ topic (an input larger than the DLQ takes, e.g.
after an operator raised a raw topic's limit, or a DLQ topic whose limit was lowered) is
still written, in a form that fits: the input's value is left out first, then its own
headers, then its key, and `dlq_dropped` names what was left out and `dlq_original_bytes`
its size. The `dlq_source_*` headers say where the whole input still is (the raw topics
keep it for their retention). Never a failed transaction: a record that the broker refuses
would fail the commit and restart the member, again and again.

Error text never carries input content (message text is customer chat): pydantic errors are
reduced to location, type and message without the offending input; other exceptions give
their type and message, cut to 300 characters (handlers must not put content into them).
"""

from __future__ import annotations

import time

from pydantic import ValidationError

from processors.engine._limits import record_bytes

__all__ = ["DLQ_HEADERS", "describe_error", "dlq_headers", "fit_dead_letter"]

DLQ_HEADERS = (
    "dlq_error_type",
    "dlq_error",
    "dlq_processor",
    "dlq_source_topic",
    "dlq_source_partition",
    "dlq_source_offset",
    "dlq_time_ms",
    "dlq_dropped",
    "dlq_original_bytes",
)
_MAX_ERROR = 300


def describe_error(exc: BaseException) -> str:
    """A one-line, content-free description of why a record failed."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['type']} ({err['msg']})"
            for err in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        text = f"{exc.title}: " + "; ".join(parts)
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def dlq_headers(
    original: list[tuple[str, bytes]],
    exc: BaseException,
    *,
    processor: str,
    topic: str,
    partition: int,
    offset: int,
    traceparent: str | None = None,
) -> list[tuple[str, bytes]]:
    """The input's headers (our `dlq_*` ones replaced, and its `traceparent` by the given
    one: the trace continued) followed by the error headers."""
    dropped = {*DLQ_HEADERS, "traceparent"} if traceparent else DLQ_HEADERS
    kept = [(k, v) for k, v in original if k not in dropped]
    if traceparent:
        kept.append(("traceparent", traceparent.encode()))
    return [
        *kept,
        ("dlq_error_type", type(exc).__name__.encode()),
        ("dlq_error", describe_error(exc).encode()),
        ("dlq_processor", processor.encode()),
        ("dlq_source_topic", topic.encode()),
        ("dlq_source_partition", str(partition).encode()),
        ("dlq_source_offset", str(offset).encode()),
        ("dlq_time_ms", str(int(time.time() * 1000)).encode()),
    ]


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], limit: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter as `dlq_headers` built it, or, when it is larger than `limit`, with
    the value, then the input's own headers, then the key left out (module docstring)."""
    size = record_bytes(key, value, headers)
    if size <= limit:
        return key, value, headers
    ours = [(k, v) for k, v in headers if k in DLQ_HEADERS]
    steps = (
        ("value", key, None, headers),
        ("value,headers", key, None, ours),
        ("value,headers,key", None, None, ours),
    )
    for dropped, key_kept, value_kept, headers_kept in steps:
        fitted = [
            *headers_kept,
            ("dlq_dropped", dropped.encode()),
            ("dlq_original_bytes", str(size).encode()),
        ]
        if record_bytes(key_kept, value_kept, fitted) <= limit:
            break
    return key_kept, value_kept, fitted
