"""Cheap UTC timestamps for the request path: the date-and-seconds text is formatted once per
second and reused (a `datetime.now(UTC).isoformat()` per request cost a few µs each)."""

from __future__ import annotations

import time

__all__ = ["ce_time", "log_time"]

_SECONDS: dict[int, str] = {}


def _seconds(sec: int) -> str:
    text = _SECONDS.get(sec)
    if text is None:
        if len(_SECONDS) > 8:
            _SECONDS.clear()
        text = _SECONDS[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return text


def ce_time(epoch_ms: int) -> str:
    """`2026-11-22T14:54:22.123Z`: RFC 3339 UTC in milliseconds, as `format_time` writes it."""
    sec, ms = divmod(epoch_ms, 1000)
    return f"{_seconds(sec)}.{ms:03d}Z"


def log_time() -> str:
    """Now as `2026-11-22T14:54:22.123456Z` (microseconds, like the shared logger's)."""
    sec, us = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_seconds(sec)}.{us:06d}Z"
