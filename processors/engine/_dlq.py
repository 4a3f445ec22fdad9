"""Dead-letter records: the input key and value unchanged, its headers kept, plus headers
naming the error and the source topic, partition and offset. Private to the engine.

Error text never carries input content (message text is customer chat): pydantic errors are
reduced to location, type and message without the offending input; other exceptions give
their type and message, cut to 300 characters (handlers must not put content into them).
"""

from __future__ import annotations

import time

from pydantic import ValidationError

__all__ = ["DLQ_HEADERS", "describe_error", "dlq_headers"]

DLQ_HEADERS = (
    "dlq_error_type",
    "dlq_error",
    "dlq_processor",
    "dlq_source_topic",
    "dlq_source_partition",
    "dlq_source_offset",
    "dlq_time_ms",
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
