"""Tolerant models of the 语聚AI / juzibot callbacks: chat message, room join / leave / topic.

Quirks handled (PLATFORM.md): the `data` wrapper or the flat enterprise v2 body
(`messageType, imContactId, imRoomId, imBotId, botUserId, orgId`), whitespace in keys,
timestamps as string or number in s or ms, `leftMember` / `leftMembers`, absent optional
fields, unknown fields kept (`model_extra`). The `token` is parsed as a secret and never
serialized.

Room member lists are lenient entry by entry (`schemas._base.valid_items`): an entry that is
not a member object or has no usable `imContactId` is dropped, the others kept, and a list
sent as a single object (`"leftMember": {...}`) is read as a list of one. So one bad entry
costs that entry, not the whole room event: the ingress routes the body to its room topic,
and the membership processor applies the other members.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    WithJsonSchema,
    model_validator,
)

from schemas._base import Inbound, Lenient, valid_items
from schemas._lenient import coerce_int, parse_epoch, strip_keys

__all__ = [
    "BotInfo",
    "RoomEvent",
    "RoomEventKind",
    "RoomJoin",
    "RoomLeave",
    "RoomMember",
    "RoomTopic",
    "YujuMessage",
    "classify_room",
    "parse_epoch",
    "unwrap_message",
]

EpochTime = Annotated[
    datetime | None,
    BeforeValidator(parse_epoch),
    WithJsonSchema(
        {
            "type": ["number", "string", "null"],
            "description": "epoch seconds, milliseconds or microseconds (a number or a numeric "
            "string), or an ISO 8601 string",
        },
        mode="validation",
    ),
]
LooseInt = Annotated[
    int | None,
    BeforeValidator(coerce_int),
    WithJsonSchema(
        {"type": ["integer", "string", "null"], "description": "an integer, or its digits"},
        mode="validation",
    ),
]
Token = Annotated[SecretStr | None, Field(default=None, exclude=True, repr=False)]


def unwrap_message(body: Any) -> Any:
    """The message fields of a callback body: the `data` object when wrapped, keys stripped."""
    body = strip_keys(body)
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        inner: dict[str, Any] = body["data"]
        return inner
    return body


class YujuMessage(Inbound):
    """A chat-message callback (`/notice`), group-level (`data` wrapper) or enterprise v2."""

    message_id: str = Field(description="the platform's message id, the same on a retry")
    chat_id: str | None = Field(
        default=None, description="the conversation: one bot with one customer (the key)"
    )
    avatar: Lenient[str] = Field(default=None, description="the contact's avatar URL")
    room_topic: Lenient[str] = Field(default=None, description="the room's name (group chat)")
    room_id: Lenient[str] = Field(
        default=None,
        validation_alias=AliasChoices("roomId", "imRoomId"),
        description="the room (group chat); absent or empty in a private chat",
    )
    contact_name: Lenient[str] = Field(default=None, description="the contact's nickname")
    contact_id: Lenient[str] = Field(
        default=None,
        validation_alias=AliasChoices("contactId", "imContactId"),
        description="the customer (external contact) of the conversation",
    )
    payload: Any = Field(
        default=None, description="the message content; its fields depend on `type`"
    )
    type: LooseInt = Field(
        default=None,
        validation_alias=AliasChoices("type", "messageType"),
        description="message kind: 7 text, 6 image, 1 file, 2 voice, ... (docs/platform.md); "
        "unknown values are kept",
    )
    timestamp: EpochTime = Field(default=None, description="when the message was sent")
    token: Token
    bot_id: Lenient[str] = Field(
        default=None,
        validation_alias=AliasChoices("botId", "imBotId"),
        description="the hosted bot account",
    )
    contact_type: LooseInt = Field(
        default=None,
        description="0 unknown, 1 personal WeChat, 2 official account, 3 WeCom user",
    )
    coworker: Lenient[bool] = Field(default=None, description="the contact is an employee")
    bot_wxid: Lenient[str] = None
    bot_weixin: Lenient[str] = Field(
        default=None, validation_alias=AliasChoices("botWeixin", "botUserId")
    )
    source: LooseInt = Field(
        default=None,
        description="how the message was sent (open enum): 0 phone, 1 console, 2 broadcast, "
        "3 auto-reply, ..., 15 AI reply",
    )
    send_by: Lenient[str] = Field(default=None, description="console user id (console sends)")
    is_self: Lenient[bool] = Field(default=None, description="sent by the hosted bot account")
    mention_self: Lenient[bool] = Field(default=None, description="@-mentions the bot")
    external_user_id: Lenient[str] = None
    room_wecom_chat_id: Lenient[str] = None
    org_id: Lenient[str] = Field(default=None, description="the organization (enterprise v2)")

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, body: Any) -> Any:
        return unwrap_message(body)

    @property
    def conversation_id(self) -> str:
        """`chatId` (one bot × one customer); without it, bot and room-or-contact."""
        if self.chat_id:
            return self.chat_id
        return f"{self.bot_id or ''}:{self.room_id or self.contact_id or ''}"


class BotInfo(Inbound):
    im_bot_id: Lenient[str] = None
    wecom_user_id: Lenient[str] = None
    nick_name: Lenient[str] = None


class RoomMember(Inbound):
    """A member in a room event's member list."""

    im_contact_id: str = Field(
        validation_alias=AliasChoices("imContactId", "contactId", "wxid"),
        description="the member",
    )
    nick_name: Lenient[str] = Field(default=None, validation_alias=AliasChoices("nickName", "name"))
    avatar_url: Lenient[str] = Field(
        default=None, validation_alias=AliasChoices("avatarUrl", "avatar")
    )
    room_alias: Lenient[str] = None
    is_friend: Lenient[bool] = None
    contact_type: LooseInt = None
    coworker: Lenient[bool] = None
    is_self: Lenient[bool] = Field(default=None, description="the hosted bot itself")


MemberList = Annotated[list[RoomMember], BeforeValidator(valid_items(RoomMember))]
"""A room event's member list: bad entries dropped, a single object read as a list."""


class RoomEvent(Inbound):
    """Fields shared by the room join, leave and topic callbacks."""

    chat_id: Lenient[str] = None
    token: Token
    bot_info: Lenient[BotInfo] = None
    im_room_id: str = Field(
        validation_alias=AliasChoices("imRoomId", "roomId"), description="the room (the key)"
    )
    topic: Lenient[str] = Field(default=None, description="the room's name")
    avatar_url: Lenient[str] = None
    owner_im_contact_id: Lenient[str] = None
    group_id: Lenient[str] = None
    timestamp: EpochTime = Field(
        default=None, description="when the bot obtained the change (not when it happened)"
    )

    @model_validator(mode="before")
    @classmethod
    def _strip(cls, body: Any) -> Any:
        return strip_keys(body)


class RoomJoin(RoomEvent):
    """Members joined a room. The list's name is a guess: `joinMember(s)` or `members`."""

    members: MemberList = Field(
        default_factory=list,
        validation_alias=AliasChoices("joinMember", "joinMembers", "members"),
    )


class RoomLeave(RoomEvent):
    """Members left (or were removed from) a room: `leftMember` (语聚) or `leftMembers`."""

    members: MemberList = Field(
        default_factory=list, validation_alias=AliasChoices("leftMember", "leftMembers")
    )


class RoomTopic(RoomEvent):
    """A room was renamed: the leave body without a member list."""


RoomEventKind = Literal["join", "leave", "topic"]

_LEAVE_KEYS = ("leftMember", "leftMembers")
_JOIN_KEYS = ("joinMember", "joinMembers", "members")


def classify_room(body: Any) -> RoomEventKind:
    """Tell join / leave / topic apart by content, whatever path the callback came to."""
    keys = set(strip_keys(body)) if isinstance(body, dict) else set()
    if keys.intersection(_LEAVE_KEYS):
        return "leave"
    if keys.intersection(_JOIN_KEYS):
        return "join"
    return "topic"
