"""Tolerant models of 语聚's chat-record query API (`POST /v1/openapi/chat/record`).

It is a pull API on the platform, not a callback; we model it because its vocabulary is the
one our normalized messages use: `message_type` AI对话 / 人工对话 is the `channel`
(`ai` / `human`) and `sender_type` 用户 / 客服 is the `sender_role` (`customer` / `agent`).
"""

from __future__ import annotations

from pydantic import Field

from schemas._base import Inbound, Lenient

__all__ = [
    "CHANNEL_BY_MESSAGE_TYPE",
    "SENDER_ROLE_BY_SENDER_TYPE",
    "ChatRecord",
    "ChatRecordMessage",
    "ChatRecordRequest",
    "ChatRecordResponse",
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
