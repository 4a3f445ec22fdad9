"""The processors' own bounds on what one input may make a key or a store value grow to:
ids no longer than `MAX_ID_CHARS`, store values no larger than a stated number of bytes.
An input that would pass a bound raises `StateBoundError`, so the engine sends it to the
processor's DLQ with the reason and undoes its store writes, and the partition moves on.
Private to `processors`; the limits per store are tabled in docs/design.md ("State
bounds").

Why refuse rather than truncate or hash: ids appear in outputs and in keys that consumers
join on, so a shortened id would be a wrong one; and no legitimate platform sends ids this
long (WeCom and juzibot ids are 20-40 characters). The bounds sit well inside the
changelog topics' record limit (`StoreSpec.max_message_bytes`, 1 MiB, which the engine
creates them with and checks every write against): a store value is a changelog record,
and a record the broker refuses would fail the whole transaction and restart the member on
the same input for ever.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from runtime.errors import WecomStreamError

__all__ = [
    "MAX_ID_CHARS",
    "MAX_VALUE_BYTES",
    "StateBoundError",
    "check_id",
    "check_ids",
    "check_value",
]

MAX_ID_CHARS = 256
"""The longest id (message, conversation, room, contact, bot, exec, node, session…) a
processor accepts: several times the longest a platform sends."""
MAX_VALUE_BYTES = 768 * 1024
"""The largest store value (its JSON) unless a store states less: a changelog record stays
well under the topics' 1 MiB limit with its key and framing."""


class StateBoundError(WecomStreamError, ValueError):
    """An input would make an id or a stored value larger than the processor accepts.

    Operator action: none for the stream (the record is on the processor's DLQ with this
    message, naming the field or store and the size; the partition moved on). Such a record
    does not come from a platform as documented: look at where it came from (its
    `ce_source` and `tenant` headers) before replaying it.
    """


def check_id(field: str, value: str | None) -> None:
    """`StateBoundError` when the id `value` of `field` is longer than `MAX_ID_CHARS`."""
    if value is not None and len(value) > MAX_ID_CHARS:
        raise StateBoundError(
            f"{field} is {len(value)} characters long, over the limit of {MAX_ID_CHARS}"
        )


def check_ids(field: str, values: Iterable[str]) -> None:
    """`check_id` over several ids of one field (a list of members or nodes)."""
    for value in values:
        check_id(field, value)


def check_value(store: str, value: Any, limit: int = MAX_VALUE_BYTES) -> bytes:
    """`StateBoundError` when the JSON of a value for `store` is over `limit` bytes; the
    JSON otherwise (a caller that also writes it out can reuse it)."""
    data = orjson.dumps(value)
    if len(data) > limit:
        raise StateBoundError(
            f"a value of store {store!r} would be {len(data)} bytes, over the limit of {limit}"
        )
    return data
