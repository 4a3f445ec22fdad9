"""The topic registry: every topic wecom-stream writes, with its key, value model and config;
and the names of the registered processors.

One source of truth for names, partitions and cleanup policies: `wecom-stream topics create`,
the ingress, the processors and the README's topic table all read it. Processors are
registered as entry points (group `wecom_stream.processors` in pyproject.toml); their names
are read here from the installed metadata, without importing `processors/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

__all__ = [
    "DAY_MS",
    "DEFAULT_PARTITIONS",
    "PROCESSOR_GROUP",
    "PROCESSOR_NAMES",
    "REGISTRY",
    "RETIRED_OUTPUTS",
    "TopicSpec",
    "by_name",
    "dlq_topic",
    "processor_entry_points",
    "processor_names",
]

DAY_MS = 24 * 60 * 60 * 1000
DEFAULT_PARTITIONS = 6
"""Partitions per topic: the upper bound of replicas per processor consumer group.

Input topics read together by one processor are co-partitioned (same count, same key), which
the engine checks at start-up, so six everywhere.
"""

CleanupPolicy = Literal["delete", "compact"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: logical name (without the deployment's prefix) and how it is built."""

    name: str
    writer: str
    key: str
    value: str
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: int | None = None
    partitions: int = DEFAULT_PARTITIONS
    max_message_bytes: int | None = None
    compression_type: str | None = None
    timestamp_type: Literal["CreateTime", "LogAppendTime"] | None = None
    """`message.timestamp.type`; None: the broker's default (CreateTime)."""

    @property
    def ce_type(self) -> str:
        """The CloudEvents `type` of records on this topic."""
        return f"wecomstream.{self.name}"

    def configs(self) -> dict[str, str]:
        """Topic-level broker configs for creation."""
        configs: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        if self.max_message_bytes is not None:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        if self.compression_type is not None:
            configs["compression.type"] = self.compression_type
        if self.timestamp_type is not None:
            configs["message.timestamp.type"] = self.timestamp_type
        return configs


RAW_YUJU_MESSAGE = "raw.yuju.message.v1"
RAW_YUJU_ROOM_JOIN = "raw.yuju.room-join.v1"
RAW_YUJU_ROOM_LEAVE = "raw.yuju.room-leave.v1"
RAW_YUJU_ROOM_TOPIC = "raw.yuju.room-topic.v1"
RAW_INSIGHT_FEEDBACK = "raw.insight.feedback.v1"
RAW_UNROUTED = "raw.unrouted.v1"
RAW_YUJU_CHAT_RECORD = "raw.yuju.chat-record.v1"
CHAT_MESSAGE = "chat.message.v2"
ROOM_MEMBERSHIP = "room.membership.v2"
ROOM_MEMBER_CHANGE = "room.member-change.v2"
FEEDBACK_EVENT = "feedback.event.v2"
FEEDBACK_STATS = "feedback.stats.v2"
RETIRED_OUTPUTS = (
    "chat.message.v1",
    "room.membership.v1",
    "room.member-change.v1",
    "feedback.event.v1",
    "feedback.stats.v1",
)
"""The processors' outputs before tenant-scoped keys (state version 1): no longer written
nor created. Existing clusters keep them until their consumers moved to `.v2`
(docs/upgrading.md); then an operator deletes them."""

PROCESSOR_GROUP = "wecom_stream.processors"
"""The entry-point group a processor is registered in: `name = "module:declare"`."""
_FIRST = ("normalizer", "membership", "feedback")
"""Not a registration: the order these keep ahead of the others, as before the registry
(`run` gives the i-th processor metrics port 9100 + i; entry points come back sorted by
name). Every other processor follows, by name."""
_PROCESSOR_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
"""Lower-case words joined by `-`: the name appears in Kubernetes object names, topics and
consumer groups."""


def _order(ep: EntryPoint) -> tuple[int, str]:
    return (_FIRST.index(ep.name) if ep.name in _FIRST else len(_FIRST), ep.name)


def processor_entry_points() -> tuple[EntryPoint, ...]:
    """The registered processors, from the installed metadata (nothing is imported), in a
    stable order (`_FIRST`, then by name). ValueError when a name is registered twice or is
    not lower-case words joined by `-`."""
    ordered = tuple(sorted(entry_points(group=PROCESSOR_GROUP), key=_order))
    names = [ep.name for ep in ordered]
    for name in names:
        if not _PROCESSOR_NAME.fullmatch(name):
            raise ValueError(
                f"processor name {name!r} (entry point group {PROCESSOR_GROUP}): use lower-case "
                "letters and digits, words joined by '-'"
            )
        if names.count(name) > 1:
            raise ValueError(
                f"processor {name!r} is registered twice (entry point group {PROCESSOR_GROUP}): "
                "uninstall the stale distribution"
            )
    return ordered


def processor_names() -> tuple[str, ...]:
    """The names of the registered processors, read now (`processor_entry_points`)."""
    return tuple(ep.name for ep in processor_entry_points())


PROCESSOR_NAMES = processor_names()
"""The registered processors as this process started (the DLQ topics below are theirs)."""


def dlq_topic(processor: str) -> str:
    """The dead-letter topic of a processor."""
    return f"dlq.{processor}.v1"


RAW_MAX_MESSAGE_BYTES = 2 * 1024 * 1024
"""Raw topics take a whole callback: `WECOM_STREAM_MAX_BODY_BYTES` (1 MiB default) plus the
CloudEvents headers would overflow the broker's ~1 MiB default. Raise both together."""
DERIVED_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Outputs that embed a raw body (ChatMessage keeps the payload, DLQ records copy the input)
may be larger than their input; 4 MiB = the producers' `max_request_size`."""


def _raw(name: str, key: str, value: str = "callback JSON", days: int = 7) -> TopicSpec:
    return TopicSpec(
        name,
        "ingress",
        key,
        value,
        retention_ms=days * DAY_MS,
        max_message_bytes=RAW_MAX_MESSAGE_BYTES,
    )


REGISTRY: tuple[TopicSpec, ...] = (
    _raw(RAW_YUJU_MESSAGE, "chatId"),
    _raw(RAW_YUJU_ROOM_JOIN, "imRoomId"),
    _raw(RAW_YUJU_ROOM_LEAVE, "imRoomId"),
    _raw(RAW_YUJU_ROOM_TOPIC, "imRoomId"),
    _raw(RAW_INSIGHT_FEEDBACK, "botId"),
    _raw(RAW_UNROUTED, "none", "authenticated JSON of unknown shape", days=30),
    TopicSpec(
        RAW_YUJU_CHAT_RECORD,
        "backfill chat-records",
        "chat id",
        "ChatRecordEntry: one chat-record message with its customer, chat id, position and "
        "query window",
        retention_ms=7 * DAY_MS,
        max_message_bytes=RAW_MAX_MESSAGE_BYTES,
        # The broker stamps each record as it appends it: the normalizer's stream time (its
        # dedup expiry) then follows the broker's clock, not a backfill machine's, which may
        # be off. The fetch time stays in `ce_time`.
        timestamp_type="LogAppendTime",
    ),
    TopicSpec(
        CHAT_MESSAGE,
        "normalizer",
        "tenant|conversation id",
        "ChatMessage",
        max_message_bytes=DERIVED_MAX_MESSAGE_BYTES,
    ),
    TopicSpec(
        ROOM_MEMBERSHIP,
        "membership",
        "tenant|room id",
        "RoomMembership (full snapshot)",
        cleanup_policy="compact",
        # bench/membership.py: a 2,000-member room's snapshot is ~0.6 MB of JSON, ~0.16 MB
        # zstd-compressed (gzip as small, 9x the CPU). 4 MiB = the producers'
        # max.request.size; the processor refuses snapshots over 3 MiB (to its DLQ).
        max_message_bytes=4 * 1024 * 1024,
        compression_type="zstd",
    ),
    TopicSpec(ROOM_MEMBER_CHANGE, "membership", "tenant|room id", "MemberChange"),
    TopicSpec(FEEDBACK_EVENT, "feedback", "tenant|bot id", "FeedbackEvent (with previous status)"),
    TopicSpec(
        FEEDBACK_STATS,
        "feedback",
        "tenant|bot id|window|window start, plus |node id for a node's row",
        "FeedbackStats",
        cleanup_policy="compact",
    ),
    *(
        TopicSpec(
            dlq_topic(name),
            name,
            "input key",
            "input value + error headers",
            max_message_bytes=DERIVED_MAX_MESSAGE_BYTES,
        )
        for name in PROCESSOR_NAMES
    ),
)

_BY_NAME = {spec.name: spec for spec in REGISTRY}


def by_name(name: str) -> TopicSpec:
    """The registry entry for a logical topic name; KeyError names the known topics."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None
