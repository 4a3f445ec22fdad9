"""The field mapping of the normalizer: platform `type` → `kind`, sender role and channel,
text, mentions and attachment of a payload. Pure functions shared by both parse paths of
`processors.normalizer` (which documents the mapping and re-exports these). Private."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schemas.chat import Attachment, Channel, MessageKind, SenderRole

if TYPE_CHECKING:
    from processors._normalizer_fast import FastMessage
    from schemas.yuju import YujuMessage

__all__ = [
    "HUMAN_SOURCES",
    "KINDS",
    "attachment_fields",
    "attachment_of",
    "attachment_values",
    "kind_of",
    "mentions_of",
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
