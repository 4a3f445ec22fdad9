"""The contracts of wecom-stream, importable by any consumer of our topics.

Inbound: tolerant models of the platform callbacks. Outbound: strict models of the events
we publish. Plus the topic registry and the CloudEvents header helpers.
"""

from schemas.chat import Attachment, ChatMessage
from schemas.cloudevents import event_headers, header_map, stable_id
from schemas.feedback import FeedbackEvent, FeedbackStats, stats_key
from schemas.insight import InsightFeedback
from schemas.registry import REGISTRY, TopicSpec, by_name, dlq_topic
from schemas.room import MemberChange, MemberState, RoomMembership
from schemas.yuju import RoomJoin, RoomLeave, RoomMember, RoomTopic, YujuMessage, classify_room

__all__ = [
    "REGISTRY",
    "Attachment",
    "ChatMessage",
    "FeedbackEvent",
    "FeedbackStats",
    "InsightFeedback",
    "MemberChange",
    "MemberState",
    "RoomJoin",
    "RoomLeave",
    "RoomMember",
    "RoomMembership",
    "RoomTopic",
    "TopicSpec",
    "YujuMessage",
    "by_name",
    "classify_room",
    "dlq_topic",
    "event_headers",
    "header_map",
    "stable_id",
    "stats_key",
]
