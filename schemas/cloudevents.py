"""CloudEvents Kafka protocol binding (binary mode): the `ce_*` headers on every record.

Also the stable event id: a retried callback maps to the same `ce_id`, so consumers can
deduplicate (messages: `messageId`; everything else: a hash of the canonical body).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "CONTENT_TYPE_JSON",
    "SPEC_VERSION",
    "Headers",
    "event_headers",
    "format_time",
    "header_map",
    "parse_time",
    "stable_id",
]

SPEC_VERSION = "1.0"
CONTENT_TYPE_JSON = "application/json"

Headers = list[tuple[str, bytes]]
_SPEC_VERSION_BYTES = SPEC_VERSION.encode()


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a `Z`, as `ce_time` carries it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Inverse of `format_time` (accepts any RFC 3339 offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def event_headers(
    *,
    ce_id: str,
    source: str,
    ce_type: str,
    time: datetime | str,
    tenant: str | None = None,
    content_type: str = CONTENT_TYPE_JSON,
) -> Headers:
    """The binary-mode headers for one record, `tenant` added when known. `time` as a str
    is taken as already formatted by `format_time` (a hot path passing a `ce_time` on)."""
    headers: Headers = [
        ("ce_specversion", _SPEC_VERSION_BYTES),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", (time if isinstance(time, str) else format_time(time)).encode()),
        ("content-type", content_type.encode()),
    ]
    if tenant:
        headers.append(("tenant", tenant.encode()))
    return headers


_REPEATING = frozenset({"ce_specversion", "ce_source", "ce_type", "content-type", "tenant"})
"""Headers with a handful of distinct values across a topic: decoded once, then looked up."""
_DECODED: dict[bytes | None, str] = {}
_DECODED_MAX = 1024


def header_map(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Kafka headers as a dict of str (the last value wins; undecodable bytes replaced).

    The processors' per-record hot path: the values of `_REPEATING` headers come from a
    bounded cache (a lookup is cheaper than a decode and a new str)."""
    out: dict[str, str] = {}
    for key, raw in headers:
        if key in _REPEATING:
            text = _DECODED.get(raw)
            if text is None:
                text = (raw or b"").decode("utf-8", "replace")
                if len(_DECODED) >= _DECODED_MAX:
                    _DECODED.clear()
                _DECODED[raw] = text
        else:
            text = (raw or b"").decode("utf-8", "replace")
        out[key] = text
    return out


def stable_id(body: Mapping[str, Any]) -> str:
    """A deterministic id of a JSON body: SHA-256 over its canonical form, `token` excluded."""
    canonical = orjson.dumps(
        {k: v for k, v in body.items() if k != "token"},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()[:32]
