"""`ChatMessage`: the normalized chat message on `chat.message.v2` (strict, snake_case),
written by the normalizer, one per distinct platform `messageId` per tenant (record key
`tenant|conversation_id`, `ce_id` `tenant|message_id`).

Field names are the contract in DESIGN.md ("Output field names"); the mapping from the
platform's callback is documented in `processors.normalizer` and docs/design.md ("normalizer").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from schemas._base import Outbound

__all__ = [
    "Attachment",
    "Channel",
    "ChatMessage",
    "Direction",
    "MessageKind",
    "Origin",
    "SenderRole",
]

Direction = Literal["inbound", "outbound"]
SenderRole = Literal["customer", "agent", "bot", "unknown"]
"""`unknown` only for a backfilled chat record whose `sender_type` the API has not
documented and whose content carries no display prefix that tells."""
Channel = Literal["ai", "human"]
Origin = Literal["callback", "chat_record"]
MessageKind = Literal[
    "unknown",
    "file",
    "voice",
    "contact_card",
    "chat_history",
    "emoticon",
    "image",
    "text",
    "location",
    "mini_program",
    "money",
    "recalled",
    "link",
    "video",
    "channels",
    "call_record",
    "group_solitaire",
    "room_invitation",
    "system",
    "wecom_system",
]


class Attachment(Outbound):
    """What a non-text message carries; which fields are set depends on `kind`."""

    url: str | None = Field(default=None, description="file / voice / image / video / link URL")
    name: str | None = Field(default=None, description="file, contact card or place name")
    size: int | None = Field(default=None, description="bytes")
    duration: float | None = Field(default=None, description="seconds (voice, video)")
    width: int | None = None
    height: int | None = None
    thumbnail_url: str | None = None
    title: str | None = Field(default=None, description="link / mini program title")
    description: str | None = None
    address: str | None = Field(default=None, description="location")
    latitude: float | None = None
    longitude: float | None = None
    app_id: str | None = Field(default=None, description="mini program")
    page_path: str | None = Field(default=None, description="mini program")
    contact_id: str | None = Field(default=None, description="contact card: the card's wxid")


class ChatMessage(Outbound):
    """One chat message, normalized from a 语聚AI / juzibot message callback, or from a
    chat-record entry backfilled from the chat-record API (`origin` tells them apart; such a
    message has `cr-…` as `message_id`, no bot, room or attachment, and `sent_at` =
    `received_at` = when the backfill fetched it: the API gives no time).

    The same message seen live and backfilled is two `ChatMessage`s: a chat record has no id
    and no time, and its `conversation_id`/`contact_id` are the chat-record API's own
    `chat_id`/`customer_id`, not a callback's `chatId`/`contactId` (docs/platform.md, "Chat
    record query API", says how a consumer can match them)."""

    message_id: str = Field(
        description="the platform's messageId (stable across retries); a chat record's "
        "`cr-` id (stable across re-runs of a backfill over a fixed window)"
    )
    conversation_id: str = Field(description="chatId (one bot × one customer), else bot:room")
    tenant: str = Field(
        description="the tenant (resolved by the ingress from the token); `default` for a "
        "record that names none"
    )
    platform: Literal["yuju"] = "yuju"
    bot_id: str | None
    contact_id: str | None
    contact_name: str | None
    room_id: str | None = Field(description="null in a private chat")
    room_topic: str | None
    direction: Direction = Field(
        description="which side wrote it: outbound = the company's side (the hosted bot "
        "account, or a coworker: an employee in the chat), inbound = anyone else (a customer)"
    )
    sender_role: SenderRole
    channel: Channel = Field(description="ai / human, as the chat-record API's AI对话 / 人工对话")
    kind: MessageKind
    type_code: int | None = Field(description="the platform's `type`, kept even when unknown")
    text: str | None
    mentions: list[str] = Field(default_factory=list, description="@-mentioned contact ids")
    mentions_bot: bool = False
    attachment: Attachment | None = None
    source: int | None = Field(description="the platform's `source` enum (open), as sent")
    sent_at: datetime = Field(description="UTC; the callback's timestamp, else received_at")
    received_at: datetime = Field(description="UTC; when the ingress received the callback")
    payload: Any = Field(description="the callback's raw `payload` object, unchanged")
    origin: Origin = Field(
        default="callback",
        description="callback: a live message callback; chat_record: history backfilled from "
        "the chat-record API (no platform id or time: see `message_id`, `sent_at`)",
    )
    external_user_id: str | None = Field(
        default=None,
        description="`externalUserId`: the customer's WeCom external user id (the id other "
        "WeCom systems know the customer by)",
    )
    room_wecom_chat_id: str | None = Field(
        default=None, description="`roomWecomChatId`: the room's WeCom chat id (group chats)"
    )
    contact_type: int | None = Field(
        default=None,
        description="`contactType`: 0 unknown, 1 personal WeChat, 2 official account, "
        "3 WeCom user; other values passed through",
    )
    coworker: bool | None = Field(
        default=None, description="`coworker`: the contact is an employee of the company"
    )
    send_by: str | None = Field(
        default=None,
        description="`sendBy`: the console user who sent it (console sends of the bot "
        "account only)",
    )
    bot_wxid: str | None = Field(
        default=None, description="`botWxid`: the hosted account's member wxid"
    )
    bot_weixin: str | None = Field(
        default=None,
        description="`botWeixin` (enterprise v2: `botUserId`): the bot's WeCom user id",
    )
    avatar_url: str | None = Field(
        default=None, description="`avatar`: the customer's avatar, or the room's in a group"
    )
