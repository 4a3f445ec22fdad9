"""The value contract of every topic consumers may read: its JSON Schema, the schema
registry subject it is published under and the subject's compatibility mode.

Subjects follow the registry's default TopicNameStrategy: `<prefix><topic>-value`, the
physical topic (with `WECOM_STREAM_TOPIC_PREFIX`) plus `-value`. Compatibility modes
(docs/consumers.md, "Compatibility"):

- **BACKWARD** for the processors' outputs and `raw.yuju.chat-record.v1`: closed models we
  write. A reader with the new schema reads every record already on the topic: adding an
  optional field passes; removing, retyping or requiring a field is refused.
- **FORWARD** for the raw callback topics: open models of bodies the platforms write, which
  we only learn more about. A reader with an older schema reads every new record: adding a
  field the platform documents passes (the older schema allows unknown fields); removing or
  retyping a documented field is refused.
- **NONE** for `raw.unrouted.v1` and the DLQs: their values are of unknown shape (any JSON,
  or a DLQ's undecodable input bytes), so the schema is permissive and there is nothing to
  check.

Changelog topics are internal to the processors and have no contract here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from schemas._wire_schema import DRAFT_07, inbound_schema, outbound_schema
from schemas.chat import ChatMessage
from schemas.chat_record import ChatRecordEntry, ChatRecordMessage
from schemas.feedback import FeedbackEvent, FeedbackStats
from schemas.insight import InsightFeedback
from schemas.registry import (
    CHAT_MESSAGE,
    FEEDBACK_EVENT,
    FEEDBACK_STATS,
    PROCESSOR_NAMES,
    RAW_INSIGHT_FEEDBACK,
    RAW_UNROUTED,
    RAW_YUJU_CHAT_RECORD,
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
    dlq_topic,
)
from schemas.room import MemberChange, RoomMembership
from schemas.yuju import RoomJoin, RoomLeave, RoomTopic, YujuMessage

__all__ = [
    "CONTRACTS",
    "Compatibility",
    "ValueContract",
    "contract",
    "inbound_schema",
    "outbound_schema",
    "subject",
]

Compatibility = Literal["BACKWARD", "FORWARD", "NONE"]
Shape = Literal["closed", "open", "permissive"]
"""closed: a model we write (`additionalProperties: false`); open: a platform's body we
describe; permissive: any value."""


@dataclass(frozen=True, slots=True)
class ValueContract:
    """The value of one topic: `name` is its schema's title and AsyncAPI message name."""

    topic: str
    name: str
    shape: Shape
    compatibility: Compatibility
    build: Callable[[], dict[str, Any]]

    def schema(self) -> dict[str, Any]:
        """The value's JSON Schema (draft-07, self-contained)."""
        return self.build()


def subject(topic: str, prefix: str = "") -> str:
    """The registry subject of a topic's values (TopicNameStrategy on the physical topic)."""
    return f"{prefix}{topic}-value"


def _output(model: type[BaseModel]) -> Callable[[], dict[str, Any]]:
    return lambda: outbound_schema(model)


def _callback(model: type[BaseModel], wrapper: str | None = None) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        schema = inbound_schema(model, wrapper)
        schema["description"] = (
            f"{schema.get('description', '')} The body as the platform sent it, without its "
            "`token` (the ingress removes it). Open: fields the platform adds are kept, and "
            "keys may carry the platform's stray whitespace. A field of another type than "
            "documented is stored as sent (nothing is dropped) and read leniently by our "
            "processors: a number as text, anything else as null."
        ).strip()
        return schema

    return build


def _chat_record_entry() -> dict[str, Any]:
    """`ChatRecordEntry`, its `message` (the API's object, kept as returned) described by
    the chat-record API's message fields, open."""
    schema = outbound_schema(ChatRecordEntry)
    message = inbound_schema(ChatRecordMessage)
    message.pop("$schema")
    message["title"] = "ChatRecordMessage"
    schema.setdefault("definitions", {})["ChatRecordMessage"] = message
    described = schema["properties"]["message"].get("description", "")
    schema["properties"]["message"] = {
        "$ref": "#/definitions/ChatRecordMessage",
        "description": described,
    }
    return schema


def _permissive(title: str, description: str) -> Callable[[], dict[str, Any]]:
    return lambda: {"$schema": DRAFT_07, "title": title, "description": description}


_DEAD_LETTER = _permissive(
    "DeadLetter",
    "The failed input record's value, unchanged: usually the JSON of the input topic's "
    "schema, possibly bytes that are not JSON at all (a record that could not be decoded). "
    "Why it failed is in the `dlq_*` headers.",
)

CONTRACTS: tuple[ValueContract, ...] = (
    ValueContract(
        RAW_YUJU_MESSAGE, "YujuMessage", "open", "FORWARD", _callback(YujuMessage, "data")
    ),
    ValueContract(RAW_YUJU_ROOM_JOIN, "RoomJoin", "open", "FORWARD", _callback(RoomJoin)),
    ValueContract(RAW_YUJU_ROOM_LEAVE, "RoomLeave", "open", "FORWARD", _callback(RoomLeave)),
    ValueContract(RAW_YUJU_ROOM_TOPIC, "RoomTopic", "open", "FORWARD", _callback(RoomTopic)),
    ValueContract(
        RAW_INSIGHT_FEEDBACK,
        "InsightFeedback",
        "open",
        "FORWARD",
        _callback(InsightFeedback),
    ),
    ValueContract(
        RAW_UNROUTED,
        "UnroutedCallback",
        "permissive",
        "NONE",
        _permissive(
            "UnroutedCallback",
            "An authenticated callback body of a shape no route knows (any JSON value), "
            "without its `token`; `wecom-stream replay raw.unrouted.v1` re-routes it.",
        ),
    ),
    ValueContract(
        RAW_YUJU_CHAT_RECORD, "ChatRecordEntry", "closed", "BACKWARD", _chat_record_entry
    ),
    ValueContract(CHAT_MESSAGE, "ChatMessage", "closed", "BACKWARD", _output(ChatMessage)),
    ValueContract(ROOM_MEMBERSHIP, "RoomMembership", "closed", "BACKWARD", _output(RoomMembership)),
    ValueContract(ROOM_MEMBER_CHANGE, "MemberChange", "closed", "BACKWARD", _output(MemberChange)),
    ValueContract(FEEDBACK_EVENT, "FeedbackEvent", "closed", "BACKWARD", _output(FeedbackEvent)),
    ValueContract(FEEDBACK_STATS, "FeedbackStats", "closed", "BACKWARD", _output(FeedbackStats)),
    *(
        ValueContract(dlq_topic(name), "DeadLetter", "permissive", "NONE", _DEAD_LETTER)
        for name in PROCESSOR_NAMES
    ),
)

_BY_TOPIC = {c.topic: c for c in CONTRACTS}


def contract(topic: str) -> ValueContract:
    """The contract of a logical topic; KeyError names the known ones."""
    try:
        return _BY_TOPIC[topic]
    except KeyError:
        raise KeyError(f"no contract for {topic!r}; known: {', '.join(_BY_TOPIC)}") from None
