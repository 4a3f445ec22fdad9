"""语聚's chat-record query API (`POST /v1/openapi/chat/record`): tolerant models of its
request and answer, and `ChatRecordEntry`, the value `wecom-stream backfill chat-records`
writes to `raw.yuju.chat-record.v1` (one per returned message), with its stable id.

It is a pull API on the platform, not a callback. Its vocabulary is the one our normalized
messages use: `message_type` AI对话 / 人工对话 is the `channel` (`ai` / `human`) and
`sender_type` 用户 / 客服 is the `sender_role` (`customer`; `agent` on the human channel,
`bot` on the AI channel).

Messages have no id and no time; their position within the chat is all there is. The id of
an entry is a hash of (chat id, query window, position, the message's fields): the same
query over a fixed `start_time`/`end_time` window yields the same ids, so a re-run adds
nothing downstream. A rolling `days` window shifts positions as days pass (old messages fall
out, new ones arrive): ids then change and a later re-run re-publishes the window under new
ids. A changed message at a position changes its id too (a duplicate rather than a loss).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from schemas._base import Inbound, Lenient, Outbound
from schemas._lenient import coerce_int

__all__ = [
    "CHANNEL_BY_MESSAGE_TYPE",
    "SENDER_ROLE_BY_SENDER_TYPE",
    "ChatRecord",
    "ChatRecordEntry",
    "ChatRecordMessage",
    "ChatRecordRequest",
    "ChatRecordResponse",
    "QueryWindow",
    "entry_id",
    "response_code",
]

CHANNEL_BY_MESSAGE_TYPE = {"AI对话": "ai", "人工对话": "human"}
SENDER_ROLE_BY_SENDER_TYPE = {"用户": "customer", "客服": "agent"}


class ChatRecordRequest(Inbound):
    """The query body; the API takes snake_case keys."""

    customer_id: str = Field(alias="customer_id")
    days: Lenient[str] = Field(default=None, alias="days")
    start_time: Lenient[str] = Field(default=None, alias="start_time")
    end_time: Lenient[str] = Field(default=None, alias="end_time")
    chat_source: list[str] = Field(default_factory=list, alias="chat_source")
    chat_robot: list[str] = Field(default_factory=list, alias="chat_robot")
    seat_member: list[str] = Field(default_factory=list, alias="seat_member")


class ChatRecordMessage(Inbound):
    content: Lenient[str] = Field(default=None, alias="content")
    message_type: Lenient[str] = Field(default=None, alias="message_type")
    sender_type: Lenient[str] = Field(default=None, alias="sender_type")

    @property
    def channel(self) -> str | None:
        """`ai` or `human`; None for a value the API has not documented."""
        return CHANNEL_BY_MESSAGE_TYPE.get(self.message_type or "")

    @property
    def sender_role(self) -> str | None:
        """`customer` or `agent`; None for a value the API has not documented."""
        return SENDER_ROLE_BY_SENDER_TYPE.get(self.sender_type or "")


class ChatRecord(Inbound):
    chat_id: str = Field(alias="chat_id")
    messages: list[ChatRecordMessage] = Field(default_factory=list, alias="messages")


class ChatRecordResponse(Inbound):
    """`{Code, Data, Msg, RequestId}`; `Code` 2000 means success."""

    code: int = Field(alias="Code")
    data: list[ChatRecord] = Field(default_factory=list, alias="Data")
    msg: Lenient[str] = Field(default=None, alias="Msg")
    request_id: Lenient[str] = Field(default=None, alias="RequestId")


def response_code(value: Any) -> int | None:
    """An answer's `Code` as a number, whether sent as 2000 or "2000" (the doc shows a
    number; `ChatRecordResponse` coerces a numeric string the same way); None when it is no
    number at all."""
    return None if isinstance(value, bool) else coerce_int(value)


class QueryWindow(Outbound):
    """The window a chat record was queried with, as the request body carries it: `days` a
    string, unused fields empty strings."""

    days: str = ""
    start_time: str = ""
    end_time: str = ""

    @property
    def fixed(self) -> bool:
        """True for a `start_time`/`end_time` window: its ids are stable across re-runs."""
        return bool(self.start_time or self.end_time) and not self.days


class ChatRecordEntry(Outbound):
    """One message of a chat record on `raw.yuju.chat-record.v1` (key: `chat_id`)."""

    customer_id: str = Field(description="the customer (external contact) queried")
    chat_id: str = Field(description="the chat record's id: the conversation")
    position: int = Field(ge=0, description="the message's index within the chat, from 0")
    window: QueryWindow = Field(description="the query window the position is relative to")
    message: dict[str, Any] = Field(description="the API's message object, unchanged")


class _IdParts(BaseModel):
    model_config = ConfigDict(frozen=True)
    chat_id: str
    window: QueryWindow
    position: int
    message: dict[str, Any]


def entry_id(entry: ChatRecordEntry) -> str:
    """The entry's stable id (`ce_id` of the raw record, `message_id` of its ChatMessage):
    `cr-` and 32 hex characters of SHA-256 over its canonical parts."""
    parts = _IdParts(
        chat_id=entry.chat_id, window=entry.window, position=entry.position, message=entry.message
    )
    canonical = orjson.dumps(parts.model_dump(), option=orjson.OPT_SORT_KEYS)
    return "cr-" + hashlib.sha256(canonical).hexdigest()[:32]
