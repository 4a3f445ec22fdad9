"""tail's record filters (`--key`, `--tenant`, `--where`) and `--since` parsing, as pure
functions.

`--where PATH=VALUE`: PATH is a dotted path into the record's JSON value (`payload.type`;
a number indexes a list: `members.0.contact_id`); when the value has no such path, the
header named PATH (`ce_type`, `tenant`, `dlq_error_type`, ...) is compared instead. A
string compares as it is, anything else as its JSON text (`7`, `true`, `null`), so
`payload.type=7` matches `7` and `"7"`. Several filters must all match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from wecom_stream.tail._records import RecordView

__all__ = ["RecordFilter", "Where", "parse_since", "parse_where"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Where:
    """One `--where NAME=VALUE` condition."""

    name: str
    expected: str

    def matches(self, view: RecordView) -> bool:
        found = _lookup(view.value, self.name.split("."))
        if found is _MISSING:
            return view.headers.get(self.name) == self.expected
        return _as_text(found) == self.expected


def parse_where(text: str) -> Where:
    """`NAME=VALUE` (the first `=` splits; VALUE may be empty); ValueError otherwise."""
    name, sep, expected = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--where needs FIELD=VALUE, e.g. sender_role=customer (got {text!r})")
    return Where(name.strip(), expected)


def _lookup(value: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """All conditions of one tail; the default matches every record."""

    key: str | None = None
    tenant: str | None = None
    where: tuple[Where, ...] = ()

    def matches(self, view: RecordView) -> bool:
        if self.key is not None and view.key != self.key:
            return False
        if self.tenant is not None and view.headers.get("tenant") != self.tenant:
            return False
        return all(condition.matches(view) for condition in self.where)


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> int:
    """`--since` as epoch milliseconds: a duration before `now` (`90s`, `10m`, `2h`, `1d`,
    `1h30m`) or an RFC 3339 time with a zone (`2026-12-01T08:00:00Z`, `...+08:00`)."""
    text = text.strip()
    if text and _DURATION.sub("", text) == "":
        delta = timedelta()
        for amount, unit in _DURATION.findall(text):
            delta += timedelta(**{_UNITS[unit]: int(amount)})
        return int((now - delta).timestamp() * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"--since takes a duration (10m, 2h, 1d, 1h30m) or an RFC 3339 time with a zone "
            f"(2026-12-01T08:00:00Z); got {text!r}"
        )
    return int(moment.astimezone(UTC).timestamp() * 1000)
