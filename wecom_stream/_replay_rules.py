"""The pure rules of `wecom-stream replay`: which topics can be replayed and where to, the
time window, what becomes of one record (target, headers, or why it is skipped). No I/O, so
every decision is unit-tested without a broker; `wecom_stream.replay` does the Kafka part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from ingress.routing import (
    SOURCE_INSIGHT,
    SOURCE_YUJU,
    BodyError,
    RouteKind,
    build_record,
    parse_body,
    split_token,
)
from processors.engine import DLQ_HEADERS
from runtime.errors import ConfigError
from runtime.settings import CommonSettings
from schemas.cloudevents import format_time
from schemas.registry import RAW_UNROUTED, REGISTRY, by_name
from schemas.yuju import unwrap_message

__all__ = [
    "DROPPED_PARTS",
    "OUTSIDE_WINDOW",
    "STILL_UNROUTABLE",
    "Decision",
    "ReplayArgumentError",
    "ReplayMode",
    "Source",
    "Window",
    "decide",
    "dlq_target",
    "parse_moment",
    "reroute_kinds",
    "resolve_source",
    "strip_dlq_headers",
]

ReplayMode = Literal["dlq", "unrouted", "copy"]
Headers = list[tuple[str, bytes]]

STILL_UNROUTABLE = "still unroutable"
OUTSIDE_WINDOW = "outside the time window"
DROPPED_PARTS = (
    "dead letter without the input's parts it names: replay the input from its "
    "dlq_source_topic at dlq_source_offset instead"
)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CE_HEADERS = frozenset(
    {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "tenant"}
)
_MESSAGE_KEYS = frozenset({"messageId", "messageType", "type", "payload"})
"""Keys only a chat-message body has among the yuju callbacks (`unwrap_message` fields)."""
_TARGETS = frozenset(s.name for s in REGISTRY if not s.name.startswith("dlq."))
"""What `dlq_source_topic` may name: a registry topic a processor can read (not a DLQ)."""


class ReplayArgumentError(ConfigError):
    """`wecom-stream replay` was given a topic, `--to` or time it cannot use.

    Operator action: the message names the argument; topics are logical names without
    `WECOM_STREAM_TOPIC_PREFIX` (`dlq.normalizer.v1`, `raw.unrouted.v1`), times ISO 8601 or a
    duration ago (`2h`, `1d12h`, `30m`).
    """


def parse_moment(text: str, now: datetime) -> datetime:
    """An aware UTC time from ISO 8601 (a time without an offset is taken as UTC) or a
    duration before `now` (`90s`, `30m`, `2h`, `1d12h`)."""
    text = text.strip()
    match = _DURATION.match(text)
    if text and match:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return now - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayArgumentError(
            f"cannot read the time {text!r}: give ISO 8601 (2026-12-03T10:00:00Z) or a "
            "duration ago (30m, 2h, 1d)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """Record timestamps replayed: `since <= ts < until`, in epoch ms; None is open."""

    since_ms: int | None = None
    until_ms: int | None = None

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None) -> Window:
        if since is not None and until is not None and since >= until:
            raise ReplayArgumentError(
                f"--since ({format_time(since)}) must be before --until ({format_time(until)})"
            )
        return cls(
            None if since is None else int(since.timestamp() * 1000),
            None if until is None else int(until.timestamp() * 1000),
        )

    def __contains__(self, timestamp_ms: object) -> bool:
        if not isinstance(timestamp_ms, int):
            return False
        if self.since_ms is not None and timestamp_ms < self.since_ms:
            return False
        return self.until_ms is None or timestamp_ms < self.until_ms


@dataclass(frozen=True, slots=True)
class Source:
    """What one replay reads and where it may write (physical names)."""

    logical: str
    topic: str
    group: str
    mode: ReplayMode
    to: str | None
    prefix: str


def _known(name: str, what: str) -> None:
    try:
        by_name(name)
    except KeyError as exc:
        raise ReplayArgumentError(f"{what}: {exc.args[0]}") from None


def resolve_source(topic: str, to: str | None, settings: CommonSettings) -> Source:
    """Check TOPIC and `--to` (logical names) and name the group. A DLQ goes back to each
    record's `dlq_source_topic` (or `--to`); raw.unrouted.v1 is re-routed by the ingress's
    rules (no `--to`); any other topic needs `--to` (a copy without the `dlq_*` headers)."""
    _known(topic, "TOPIC")
    if to is not None:
        _known(to, "--to")
        if to == topic:
            raise ReplayArgumentError(f"--to {to} is the replayed topic itself")
        if to.startswith("dlq."):
            raise ReplayArgumentError(f"--to {to} is a DLQ; replay sends records to an input")
    if topic == RAW_UNROUTED:
        if to is not None:
            raise ReplayArgumentError(
                f"{RAW_UNROUTED} is re-routed by the ingress's current rules; --to does not "
                "apply (what they still cannot route stays where it is)"
            )
        mode: ReplayMode = "unrouted"
    elif topic.startswith("dlq."):
        mode = "dlq"
    elif to is None:
        raise ReplayArgumentError(
            f"{topic} is neither a DLQ (dlq.<processor>.v1) nor {RAW_UNROUTED}: give --to"
        )
    else:
        mode = "copy"
    return Source(
        logical=topic,
        topic=settings.topic(topic),
        group=settings.topic(f"wecom-stream-replay.{topic}"),
        mode=mode,
        to=None if to is None else settings.topic(to),
        prefix=settings.topic_prefix,
    )


def strip_dlq_headers(headers: Sequence[tuple[str, bytes | None]]) -> Headers:
    """The headers without the engine's `dlq_*` ones, order kept (a None value as b"")."""
    return [(k, v or b"") for k, v in headers if k not in DLQ_HEADERS]


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    found = None
    for key, value in headers:
        if key == name and value is not None:
            found = value.decode("utf-8", "replace")
    return found


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:79] + "…")


def dlq_target(headers: Sequence[tuple[str, bytes | None]], prefix: str) -> str:
    """The physical topic a dead letter goes back to, from `dlq_source_topic`: the engine
    writes the logical name (prefix removed); a physical name under this deployment's prefix
    is accepted too. `ValueError` (the skip reason) when it names no registry topic
    of this deployment other than a DLQ."""
    source = _header(headers, "dlq_source_topic")
    if not source:
        raise ValueError("no dlq_source_topic header")
    if source in _TARGETS:
        return prefix + source
    if prefix and source.startswith(prefix) and source[len(prefix) :] in _TARGETS:
        return source
    raise ValueError(f"dlq_source_topic {_shown(source)} names no topic of this deployment")


def reroute_kinds(body: object, source: str | None) -> tuple[RouteKind, ...]:
    """The route kinds an unrouted body is tried as, in order. The record does not say which
    path it came to, so: Insight records (`ce_source`) only as feedback; a yuju body with a
    message key (`messageId`, `messageType`, `type`, `payload`) only as a message, without
    one only as a room event (never a broken message read as a room rename); a record of
    unknown source first as feedback (three required fields), then as above."""
    if source == SOURCE_INSIGHT:
        return ("feedback",)
    fields = unwrap_message(body)
    yuju: RouteKind = (
        "message" if isinstance(fields, dict) and _MESSAGE_KEYS & set(fields) else "room"
    )
    return (yuju,) if source == SOURCE_YUJU else ("feedback", yuju)


@dataclass(frozen=True, slots=True)
class Decision:
    """One record's fate: produced to `topic` (physical) or skipped for `reason`."""

    topic: str | None
    key: bytes | None = None
    value: bytes | None = None
    headers: Headers = field(default_factory=list)
    reason: str | None = None


def _reroute(
    value: bytes | None, headers: Sequence[tuple[str, bytes | None]], timestamp_ms: int
) -> Decision:
    """An unrouted record through the ingress's current `build_record`: a new key, `ce_*`
    headers for its topic (same `ce_time`, `tenant`), the other headers kept."""
    try:
        body = parse_body(value or b"")
    except BodyError:
        return Decision(None, reason=STILL_UNROUTABLE)
    _, clean = split_token(body)  # the ingress removed it; never forward one regardless
    tenant = _header(headers, "tenant")
    received = _header(headers, "ce_time") or format_time(
        datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    )
    for kind in reroute_kinds(clean, _header(headers, "ce_source")):
        routed = build_record(kind, clean, tenant=tenant, received=received)
        if routed.topic != RAW_UNROUTED:
            kept = [(k, v or b"") for k, v in headers if k not in _CE_HEADERS]
            return Decision(
                routed.topic, routed.key, routed.value, routed.headers + strip_dlq_headers(kept)
            )
    return Decision(None, reason=STILL_UNROUTABLE)


def decide(
    source: Source,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
    timestamp_ms: int,
    window: Window,
) -> Decision:
    """Where one record of `source` goes (physical topic), or why it stays."""
    if timestamp_ms not in window:
        return Decision(None, reason=OUTSIDE_WINDOW)
    if source.mode == "unrouted":
        routed = _reroute(value, headers, timestamp_ms)
        if routed.topic is None:
            return routed
        return Decision(source.prefix + routed.topic, routed.key, routed.value, routed.headers)
    dropped = _header(headers, "dlq_dropped")
    if dropped:  # the engine left the input out: too large for the DLQ (`processors.engine`)
        return Decision(None, reason=f"{DROPPED_PARTS} ({dropped})")
    target = source.to
    if target is None:
        try:
            target = dlq_target(headers, source.prefix)
        except ValueError as exc:
            return Decision(None, reason=str(exc))
    return Decision(target, key, value, strip_dlq_headers(headers))
