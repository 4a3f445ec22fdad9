"""tail's terminal format: one line per record, cut to the terminal width, coloured by the
kind of topic (raw: cyan, processor output: green, DLQ: red).

A line is: UTC time (record timestamp, else `ce_time`), `p<partition>@<offset>`, key, then
the fields that matter for the topic's type. A value that lacks them (or is not JSON) is
shown as compact JSON or text instead: a line never fails. Newlines collapse to spaces and
control characters are dropped, so customer text cannot move the cursor or recolour the
terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from rich.text import Text

from schemas.cloudevents import parse_time
from schemas.registry import (
    CHAT_MESSAGE,
    FEEDBACK_EVENT,
    FEEDBACK_STATS,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from wecom_stream.tail._records import RecordView

__all__ = ["TopicKind", "clean", "format_line", "summary", "topic_kind"]

TopicKind = Literal["raw", "output", "dlq"]
_COLOURS: dict[TopicKind, str] = {"raw": "cyan", "output": "green", "dlq": "red"}
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
Fields = list[tuple[str, str]]


def topic_kind(logical: str) -> TopicKind:
    """Which colour a (logical, unprefixed) topic name gets."""
    if logical.startswith("raw."):
        return "raw"
    if logical.startswith("dlq."):
        return "dlq"
    return "output"


def clean(text: str) -> str:
    """One line of plain text: whitespace runs (newlines too) to one space, controls gone."""
    return _CONTROL.sub("", _SPACE.sub(" ", text)).strip()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _get(value: Any, name: str) -> Any:
    """A required field: KeyError/TypeError on a value of another shape (then: compact)."""
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return value[name]


def _chat(view: RecordView) -> Fields:
    v = view.value
    text = _get(v, "text")
    if text is None and isinstance(v.get("attachment"), dict):
        attachment = v["attachment"]
        text = attachment.get("title") or attachment.get("name") or attachment.get("url")
    return [
        ("conversation", _show(_get(v, "conversation_id"))),
        ("sender_role", _show(_get(v, "sender_role"))),
        ("kind", _show(_get(v, "kind"))),
        ("", "" if text is None else _show(text)),
    ]


def _membership(view: RecordView) -> Fields:
    v = view.value
    return [
        ("room", _show(_get(v, "room_id"))),
        ("member_count", _show(_get(v, "member_count"))),
        ("bot_in_room", _show(_get(v, "bot_in_room"))),
    ]


def _member_change(view: RecordView) -> Fields:
    v = view.value
    return [
        ("room", _show(_get(v, "room_id"))),
        ("contact", _show(_get(v, "contact_id"))),
        ("change", _show(_get(v, "change"))),
    ]


def _feedback_event(view: RecordView) -> Fields:
    v = view.value
    previous = _get(v, "previous_status")
    status = _show(_get(v, "status"))
    return [
        ("bot", _show(_get(v, "bot_id"))),
        ("status", status if previous is None else f"{_show(previous)}→{status}"),
        ("exec", _show(_get(v, "exec_id"))),
    ]


def _feedback_stats(view: RecordView) -> Fields:
    v = view.value
    start = _get(v, "window_start")
    window = _show(_get(v, "window")) + ("" if start is None else f"@{_show(start)}")
    node = _get(v, "node_id")
    fields = [("bot", _show(_get(v, "bot_id")))] + ([] if node is None else [("node", node)])
    return [
        *fields,
        ("window", window),
        ("up", _show(_get(v, "thumbs_up"))),
        ("down", _show(_get(v, "thumbs_down"))),
        ("neutral", _show(_get(v, "neutral"))),
        ("comments", _show(_get(v, "comments"))),
    ]


def summary(value: Any, limit: int = 40) -> str:
    """A raw body as `path=value` pairs of its scalar leaves (a top-level `data` wrapper
    left out of the paths), long strings shortened: the first fields tell the event."""
    pairs: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for name, child in node.items():
                walk(child, f"{path}.{name}" if path else str(name))
        elif isinstance(node, list):
            pairs.append(f"{path}=[{len(node)}]")
        else:
            text = clean(_show(node))
            pairs.append(f"{path}={text[:limit]}{'…' if len(text) > limit else ''}")

    if isinstance(value, dict) and set(value) == {"data"}:
        value = value["data"]
    walk(value, "")
    return " ".join(pairs)


def _raw(view: RecordView) -> Fields:
    h = view.headers
    body = summary(view.value) if view.is_json else _show(view.value)
    return [
        ("ce_type", h.get("ce_type", "-")),
        ("ce_id", h.get("ce_id", "-")),
        ("tenant", h.get("tenant", "-")),
        ("", body),
    ]


def _dlq(view: RecordView) -> Fields:
    h = view.headers
    return [
        ("error_type", h.get("dlq_error_type", "-")),
        ("source", h.get("dlq_source_topic", "-")),
        ("error", h.get("dlq_error", "-")),
    ]


def _compact(view: RecordView) -> Fields:
    if view.value is None:
        return [("", "(no value: a tombstone)")]
    return [("", _show(view.value) if view.is_json else view.value)]


_BY_TOPIC: dict[str, Callable[[RecordView], Fields]] = {
    CHAT_MESSAGE: _chat,
    ROOM_MEMBERSHIP: _membership,
    ROOM_MEMBER_CHANGE: _member_change,
    FEEDBACK_EVENT: _feedback_event,
    FEEDBACK_STATS: _feedback_stats,
}


def _fields(view: RecordView, logical: str) -> Fields:
    kind = topic_kind(logical)
    if kind == "raw":
        return _raw(view)
    if kind == "dlq":
        return _dlq(view)
    fields = _BY_TOPIC.get(logical)
    if fields is None or not view.is_json:
        return _compact(view)
    try:
        return fields(view)
    except (KeyError, TypeError, ValueError):  # another shape: shown as it is
        return _compact(view)


def _time(view: RecordView) -> str:
    moment: datetime | None = None
    if view.timestamp is not None and view.timestamp >= 0:
        moment = datetime.fromtimestamp(view.timestamp / 1000, tz=UTC)
    elif "ce_time" in view.headers:
        try:
            moment = parse_time(view.headers["ce_time"])
        except ValueError:
            moment = None
    return "-" if moment is None else moment.strftime("%m-%d %H:%M:%SZ")


def format_line(view: RecordView, logical: str, width: int) -> Text:
    """The record as one styled line of at most `width` cells (`…` where it was cut)."""
    colour = _COLOURS[topic_kind(logical)]
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    line.append(_time(view), style="dim")
    line.append(f" p{view.partition}@{view.offset} ", style="dim")
    line.append(clean(view.key) if view.key is not None else "-", style=f"bold {colour}")
    for name, value in _fields(view, logical):
        line.append("  " if not name else " ")
        if name:
            line.append(f"{name}=", style=colour)
        line.append(clean(value))
    line.truncate(max(width, 1), overflow="ellipsis")
    return line
