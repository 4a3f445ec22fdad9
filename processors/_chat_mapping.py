"""The field mapping of the normalizer: platform `type` → `kind`, direction, sender role and
channel, text, mentions and attachment of a payload, and the whole `ChatMessage` of a
callback on each parse path (`normalize`: the model; `chat_fields`: the fast path's dict).
Pure functions shared by both parse paths of `processors.normalizer` (which documents the
mapping and re-exports these). Private."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from schemas.chat import Attachment, Channel, ChatMessage, Direction, MessageKind, SenderRole

if TYPE_CHECKING:
    from processors._normalizer_fast import FastMessage
    from schemas.yuju import YujuMessage

__all__ = [
    "HUMAN_SOURCES",
    "KINDS",
    "attachment_fields",
    "attachment_of",
    "attachment_values",
    "chat_fields",
    "chat_json",
    "direction_of",
    "kind_of",
    "mentions_of",
    "normalize",
    "sender_of",
    "text_of",
]

KINDS: dict[int, MessageKind] = {
    0: "unknown",
    1: "file",
    2: "voice",
    3: "contact_card",
    4: "chat_history",
    5: "emoticon",
    6: "image",
    7: "text",
    8: "location",
    9: "mini_program",
    10: "money",
    11: "recalled",
    12: "link",
    13: "video",
    14: "channels",
    15: "call_record",
    16: "group_solitaire",
    9999: "room_invitation",
    10000: "system",
    10001: "wecom_system",
}
"""PLATFORM.md's `type` table (not Wechaty's enum, which diverges from 10 upwards)."""

HUMAN_SOURCES = frozenset({0, 1})
"""`source` values of messages a person sent from the bot account: phone, console."""

_TEXT_KINDS = frozenset({"text", "voice", "system", "wecom_system", "unknown", "recalled"})


def kind_of(type_code: int | None) -> MessageKind:
    """The `kind` of a platform `type`; anything unlisted is `unknown`."""
    return KINDS.get(type_code, "unknown") if type_code is not None else "unknown"


def direction_of(msg: YujuMessage | FastMessage) -> Direction:
    """`outbound` when the company's side wrote it (the hosted bot account, `isSelf`, or a
    coworker: an employee in the chat), `inbound` when anyone else did."""
    return "outbound" if msg.is_self or msg.coworker else "inbound"


def sender_of(
    msg: YujuMessage | FastMessage, conversation_mode: Channel | None
) -> tuple[SenderRole, Channel]:
    """(sender_role, channel) by the table in the module docstring."""
    if msg.is_self:
        if msg.send_by or msg.source in HUMAN_SOURCES:
            return "agent", "human"
        return "bot", "ai"
    if msg.coworker:
        return "agent", "human"
    return "customer", conversation_mode or "ai"


def _is_mapping(value: Any) -> bool:
    """A JSON object: a dict (checked first, cheaply) or any other Mapping."""
    return type(value) is dict or isinstance(value, Mapping)


def _str(value: Any) -> str | None:
    """Text, or a number as text; None for an empty string, a bool or anything else.
    (`None`, most of what is asked, is answered first.)"""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _num(value: Any) -> float | None:
    """A number, or a numeric string, as float; None for a bool or anything else."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    """`_num` when it is a whole number, as int."""
    if value is None:
        return None
    num = _num(value)
    return int(num) if num is not None and num.is_integer() else None


def text_of(kind: MessageKind, payload: Any) -> str | None:
    """The message text: `text` (or the doc example's `content`, or `pureText`) for text
    and system messages, the speech-to-text of a voice message; None for other kinds."""
    if kind not in _TEXT_KINDS or not _is_mapping(payload):
        return None
    for field in ("text", "content", "pureText"):
        text = _str(payload.get(field))
        if text is not None:
            return text
    return None


def mentions_of(payload: Any) -> list[str]:
    """Contact ids of the payload's `mention` list (strings, or objects with an id)."""
    if not _is_mapping(payload):
        return []
    raw = payload.get("mention") or payload.get("mentions") or []
    if not isinstance(raw, list):
        return []
    out: list[str] = []
    for item in raw:
        if _is_mapping(item):
            item = next(
                (item[k] for k in ("imContactId", "contactId", "wxid", "id") if item.get(k)),
                None,
            )
        text = _str(item)
        if text is not None:
            out.append(text)
    return out


def attachment_of(kind: MessageKind, payload: Any) -> Attachment | None:
    """The kind-specific fields of the payload (PLATFORM.md's payload column)."""
    present = attachment_fields(kind, payload)
    return Attachment(**present) if present else None


def attachment_fields(kind: MessageKind, payload: Any) -> dict[str, Any] | None:
    """The attachment fields that have a value, or None (`attachment_of` without the model)."""
    every = attachment_values(kind, payload)
    return None if every is None else {k: v for k, v in every.items() if v is not None}


def attachment_values(kind: MessageKind, payload: Any) -> dict[str, Any] | None:
    """Every `Attachment` field in the model's order, None where absent, as the attachment
    serializes; None when no field has a value (then there is no attachment)."""
    if kind in ("text", "unknown") or not _is_mapping(payload):
        return None
    get = payload.get
    fields: dict[str, Any] = {
        "url": _str(
            get("fileUrl")
            or get("voiceUrl")
            or get("imageUrl")
            or get("videoUrl")
            or get("url")
            or get("sourceUrl")
        ),
        "name": _str(get("name")),
        "size": _int(get("size")),
        "duration": _num(get("duration")),
        "width": _int(get("width")),
        "height": _int(get("height")),
        "thumbnail_url": _str(get("thumbnailUrl") or get("thumbUrl")),
        "title": _str(get("title")),
        "description": _str(get("description") or get("summary")),
        "address": _str(get("address")),
        "latitude": _num(get("latitude")),
        "longitude": _num(get("longitude")),
        "app_id": _str(get("appId")),
        "page_path": _str(get("pagePath")),
        "contact_id": _str(get("wxid")) if kind == "contact_card" else None,
    }
    if kind == "link" and get("sourceUrl") and get("imageUrl"):
        fields["url"] = _str(get("sourceUrl"))  # the second link-card shape
        fields["thumbnail_url"] = _str(get("imageUrl"))
    for value in fields.values():
        if value is not None:
            return fields
    return None


def normalize(
    msg: YujuMessage,
    *,
    received_at: datetime,
    tenant: str,
    conversation_mode: Channel | None = None,
) -> ChatMessage:
    """The `ChatMessage` for one parsed callback (pure)."""
    kind = kind_of(msg.type)
    role, channel = sender_of(msg, conversation_mode)
    return ChatMessage(
        message_id=msg.message_id,
        conversation_id=msg.conversation_id,
        tenant=tenant,
        bot_id=msg.bot_id,
        contact_id=msg.contact_id,
        contact_name=msg.contact_name,
        room_id=msg.room_id or None,
        room_topic=msg.room_topic,
        direction=direction_of(msg),
        sender_role=role,
        channel=channel,
        kind=kind,
        type_code=msg.type,
        text=text_of(kind, msg.payload),
        mentions=mentions_of(msg.payload),
        mentions_bot=bool(msg.mention_self),
        attachment=attachment_of(kind, msg.payload),
        source=msg.source,
        sent_at=msg.timestamp or received_at,
        received_at=received_at,
        payload=msg.payload,
        external_user_id=msg.external_user_id,
        room_wecom_chat_id=msg.room_wecom_chat_id,
        contact_type=msg.contact_type,
        coworker=msg.coworker,
        send_by=msg.send_by,
        bot_wxid=msg.bot_wxid,
        bot_weixin=msg.bot_weixin,
        avatar_url=msg.avatar,
    )


def chat_fields(
    msg: FastMessage,
    *,
    received_iso: str,
    tenant: str,
    conversation_mode: Channel | None = None,
) -> dict[str, Any]:
    """`normalize` for the fast path: the `ChatMessage` as the dict its JSON is, built
    directly (same fields, same order, same values; `tests/unit/test_normalizer_fast.py`
    proves it against `normalize` and validates the result as a `ChatMessage`).
    `received_iso`: `received_at` as `iso_utc` writes it."""
    kind = kind_of(msg.type)
    role, channel = sender_of(msg, conversation_mode)
    payload = msg.payload
    return {
        "message_id": msg.message_id,
        "conversation_id": msg.conversation_id,
        "tenant": tenant,
        "platform": "yuju",
        "bot_id": msg.bot_id,
        "contact_id": msg.contact_id,
        "contact_name": msg.contact_name,
        "room_id": msg.room_id or None,
        "room_topic": msg.room_topic,
        "direction": direction_of(msg),
        "sender_role": role,
        "channel": channel,
        "kind": kind,
        "type_code": msg.type,
        "text": text_of(kind, payload),
        "mentions": mentions_of(payload),
        "mentions_bot": bool(msg.mention_self),
        "attachment": attachment_values(kind, payload),
        "source": msg.source,
        "sent_at": msg.sent_at or received_iso,
        "received_at": received_iso,
        "payload": payload,
        "origin": "callback",
        "external_user_id": msg.external_user_id,
        "room_wecom_chat_id": msg.room_wecom_chat_id,
        "contact_type": msg.contact_type,
        "coworker": msg.coworker,
        "send_by": msg.send_by,
        "bot_wxid": msg.bot_wxid,
        "bot_weixin": msg.bot_weixin,
        "avatar_url": msg.avatar,
    }


def chat_json(fields: dict[str, Any]) -> bytes | None:
    """`chat_fields`' dict as JSON, or None where orjson cannot write it (an integer beyond
    64 bits in the payload, or one computed from a huge float: pydantic writes those)."""
    try:
        return orjson.dumps(fields)
    except orjson.JSONEncodeError:
        return None
