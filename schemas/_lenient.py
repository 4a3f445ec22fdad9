"""Parsing helpers for the platforms' quirks: stray whitespace in keys, loose timestamps,
numbers sent as strings. Private to `schemas`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["WHITESPACE", "coerce_int", "keys_may_need_strip", "parse_epoch", "strip_keys"]

_MS_THRESHOLD = 100_000_000_000  # 1e11: in seconds that is year 5138; in ms, 1973.
_US_THRESHOLD = 100_000_000_000_000  # 1e14: microseconds from here on.


_CONTAINERS = (dict, list)


def strip_keys(value: Any) -> Any:
    """Recursively strip whitespace around dict keys (the doc's `"roomWecomChatId\\t"`).

    On a collision the key that needed no stripping wins. A dict or list in which nothing
    needs stripping is returned as it is (not copied): the common case costs one pass.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if (isinstance(key, str) and key.strip() is not key) or (
                isinstance(item, _CONTAINERS) and strip_keys(item) is not item
            ):
                break
        else:
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            clean = key.strip() if isinstance(key, str) else key
            if clean in out and clean != key:
                continue
            out[clean] = strip_keys(item) if isinstance(item, _CONTAINERS) else item
        return out
    if isinstance(value, list):
        if any(isinstance(i, _CONTAINERS) and strip_keys(i) is not i for i in value):
            return [strip_keys(i) if isinstance(i, _CONTAINERS) else i for i in value]
        return value
    return value


WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""Every character `str.strip()` removes (`str.isspace()`; a unit test checks the table)."""


def _byte_map(bytes_to_w: bytes, keep: bytes) -> bytes:
    table = bytearray(b"a" * 256)
    for b in bytes_to_w:
        table[b] = ord("w")
    for b in keep:
        table[b] = b
    return bytes(table)


_ASCII_WS = bytes(c for c in map(ord, WHITESPACE) if c < 0x80)
_FIRST_BYTES = _ASCII_WS + b"\\" + bytes({c.encode()[0] for c in WHITESPACE if c >= "\x80"})
_LAST_BYTES = _ASCII_WS + bytes({c.encode()[-1] for c in WHITESPACE if c >= "\x80"})
_AFTER_QUOTE = _byte_map(_FIRST_BYTES, b'"')
"""`"` stays, the first byte of a whitespace character (or an escape's `\\`) becomes `w`."""
_BEFORE_QUOTE = _byte_map(_LAST_BYTES, b'":')
"""`"` and `:` stay, the last byte of a whitespace character becomes `w`."""
_ESCAPED_END = (b'\\t":', b'\\n":', b'\\r":', b'\\f":')
_ESCAPED_U_END = re.compile(rb'\\u[0-9A-Fa-f]{4}":')


def keys_may_need_strip(raw: bytes) -> bool:
    """False only if no key of the JSON document `raw` has whitespace to strip.

    A C-speed scan of the raw bytes (`bytes.translate`, substring search), so the common
    clean body skips the Python walk of `strip_keys`. A key to strip starts or ends with a
    whitespace character, literal (any UTF-8 encoding in `WHITESPACE`) or escaped (`\\t`,
    `\\u3000`, ...). Its start follows the opening quote: a quote followed by the first
    byte of a whitespace character or a backslash. Its end precedes the closing quote, then
    JSON whitespace (caught as quote-then-whitespace) or directly `:`: the last byte of a
    whitespace character, or an escape, before `":`. Text inside values can look the same
    (a value starting with a space or with a character from U+2000-U+3FFF): such a false
    positive only costs the exact `strip_keys` walk, never a wrong answer.
    """
    if b'"w' in raw.translate(_AFTER_QUOTE) or b'w":' in raw.translate(_BEFORE_QUOTE):
        return True
    if b"\\" not in raw:
        return False
    return any(end in raw for end in _ESCAPED_END) or _ESCAPED_U_END.search(raw) is not None


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
