"""Parsing helpers for the platforms' quirks: stray whitespace in keys, loose timestamps,
numbers sent as strings, integers beyond 64 bits, and the nesting depth a body may have.
Used by `schemas`, and by the two hot paths that read bodies with orjson first (the
ingress's body parse, the normalizer's fast parse)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "coerce_int",
    "nested_deeper_than",
    "orjson_reads_exactly",
    "parse_epoch",
    "strip_keys",
]

MAX_JSON_DEPTH = 64
"""Containers (objects, arrays) a callback body may nest: the ingress answers a deeper body
400, and `strip_keys` refuses one (ValueError, so a model's validation fails cleanly). Real
callbacks nest fewer than 10; Python's recursion (and orjson's 255-level encoder) would fail
far below what a client can send."""

_MS_THRESHOLD = 100_000_000_000  # 1e11: in seconds that is year 5138; in ms, 1973.
_US_THRESHOLD = 100_000_000_000_000  # 1e14: microseconds from here on.


_CONTAINERS = (dict, list)
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
"""`bytes.translate` table: every digit to `0`, everything else to a space."""
_LONG_NUMBER = b"0" * 19


def orjson_reads_exactly(raw: bytes) -> bool:
    """No run of 19 or more digits in the JSON text `raw`, so every integer in it fits in 64
    bits: orjson reads larger ones as floats, losing digits (`json` keeps them). A long
    run elsewhere (a string, a long fraction) only sends the text to the slower parser.
    A translate and one substring search, in C (a regex cost ~15 µs per body, this ~2)."""
    return _LONG_NUMBER not in raw.translate(_DIGITS)


def nested_deeper_than(value: Any, limit: int) -> bool:
    """True when `value` has more than `limit` containers nested in one another. Iterative:
    any depth is measured without recursion."""
    stack = [(value, 1)] if isinstance(value, _CONTAINERS) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False


def strip_keys(value: Any, _depth: int = 1) -> Any:
    """Recursively strip whitespace around dict keys (the doc's `"roomWecomChatId\\t"`).

    On a collision the key that needed no stripping wins. A dict or list in which nothing
    needs stripping is returned as it is (not copied): the common case costs one pass.
    ValueError for a value nested deeper than `MAX_JSON_DEPTH`.
    """
    if _depth > MAX_JSON_DEPTH and isinstance(value, _CONTAINERS):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    inner = _depth + 1
    if isinstance(value, dict):
        for key, item in value.items():
            if (isinstance(key, str) and key.strip() is not key) or (
                isinstance(item, _CONTAINERS) and strip_keys(item, inner) is not item
            ):
                break
        else:
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            clean = key.strip() if isinstance(key, str) else key
            if clean in out and clean != key:
                continue
            out[clean] = strip_keys(item, inner) if isinstance(item, _CONTAINERS) else item
        return out
    if isinstance(value, list):
        if any(isinstance(i, _CONTAINERS) and strip_keys(i, inner) is not i for i in value):
            return [strip_keys(i, inner) if isinstance(i, _CONTAINERS) else i for i in value]
        return value
    return value


def parse_epoch(value: Any) -> datetime | None:
    """An epoch timestamp in s, ms or µs, as number or numeric string, or an ISO 8601 string.

    Returns UTC, or None for anything unusable (absent, empty, `"string"`, out of range);
    callers fall back to the receive time.
    """
    if value is None or isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if number is None or number != number or number <= 0:  # NaN or not positive
        return None
    if number >= _US_THRESHOLD:
        number /= 1_000_000
    elif number >= _MS_THRESHOLD:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def coerce_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
