"""The normalizer: `raw.yuju.message.v1` → `chat.message.v1`, one strict `ChatMessage` per
distinct `messageId`, keyed by conversation id. Pure functions plus the handler the engine
runs (`PROCESSOR` / `configure`).

Both body formats are accepted (group-level `data` wrapper; flat enterprise v2 with
`messageType, imContactId, imRoomId, imBotId, botUserId`), keys with stray whitespace, and
timestamps in s / ms as numbers or strings (`schemas.yuju`). Every `type` is mapped to a
`kind` (table `KINDS`); unknown values (0, 17, 10002, anything new) become `unknown` with
`type_code` and the raw `payload` kept: never rejected or dropped.

Deduplication: the store `seen` remembers each `messageId` for
`WECOM_STREAM_NORMALIZER_DEDUP_RETENTION_MS` of stream time (default 24 h; platform retries
come within minutes). A retry is dropped; a record that is not a message callback at all
(bad JSON, no `messageId`) goes to the DLQ.

Sender role and channel (`direction` from `isSelf`):

| isSelf | sendBy / source / coworker | sender_role | channel |
|---|---|---|---|
| true | `sendBy` set, or source 0 (phone) / 1 (console manual send) | agent | human |
| true | any other or no source (automated, listed below) | bot | ai |
| false / absent | the contact is a coworker (`coworker: true`) | agent | human |
| false / absent | anyone else | customer | the conversation's mode |

Automated sources (PLATFORM.md): 2 broadcast, 3 auto-reply, 4 room creation, 5 reply by
another bot, 6 API, 7 SOP, 8 API broadcast, 9 tag SOP, 11/12 multi-room relay/replay,
13 auto-end session, 14 scheduled, 15 AI reply; an unknown future value counts as automated.

The conversation's mode is the channel of its latest outbound message (store `mode`, same
retention): a customer writing after an agent took over is in the human conversation, as
the chat-record API (AI对话 / 人工对话) files it; before any agent message, `ai`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from processors._normalizer_fast import FastMessage, iso_of_ce_time, iso_utc, parse_fast
from processors.engine import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.settings import ProcessorSettings
from schemas.chat import Attachment, Channel, ChatMessage, MessageKind, SenderRole
from schemas.cloudevents import event_headers, parse_time
from schemas.registry import CHAT_MESSAGE, RAW_YUJU_MESSAGE, by_name
from schemas.yuju import YujuMessage

__all__ = [
    "CE_SOURCE",
    "KINDS",
    "PROCESSOR",
    "attachment_of",
    "chat_fields",
    "configure",
    "handle",
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

CE_SOURCE = "wecom-stream/normalizer"
_CE_TYPE = by_name(CHAT_MESSAGE).ce_type
SEEN_STORE = "seen"
MODE_STORE = "mode"
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


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
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
    num = _num(value)
    return int(num) if num is not None and num.is_integer() else None


def text_of(kind: MessageKind, payload: Any) -> str | None:
    """The message text: `text` (or the doc example's `content`, or `pureText`) for text
    and system messages, the speech-to-text of a voice message; None for other kinds."""
    if kind not in _TEXT_KINDS or not isinstance(payload, Mapping):
        return None
    for field in ("text", "content", "pureText"):
        text = _str(payload.get(field))
        if text is not None:
            return text
    return None


def mentions_of(payload: Any) -> list[str]:
    """Contact ids of the payload's `mention` list (strings, or objects with an id)."""
    if not isinstance(payload, Mapping):
        return []
    raw = payload.get("mention") or payload.get("mentions") or []
    if not isinstance(raw, list):
        return []
    out: list[str] = []
    for item in raw:
        if isinstance(item, Mapping):
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
    present = _attachment_fields(kind, payload)
    return Attachment(**present) if present else None


def _attachment_fields(kind: MessageKind, payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, Mapping) or kind in ("text", "unknown"):
        return None
    p = payload
    fields: dict[str, Any] = {
        "url": _str(
            p.get("fileUrl")
            or p.get("voiceUrl")
            or p.get("imageUrl")
            or p.get("videoUrl")
            or p.get("url")
            or p.get("sourceUrl")
        ),
        "name": _str(p.get("name")),
        "size": _int(p.get("size")),
        "duration": _num(p.get("duration")),
        "width": _int(p.get("width")),
        "height": _int(p.get("height")),
        "thumbnail_url": _str(p.get("thumbnailUrl") or p.get("thumbUrl")),
        "title": _str(p.get("title")),
        "description": _str(p.get("description") or p.get("summary")),
        "address": _str(p.get("address")),
        "latitude": _num(p.get("latitude")),
        "longitude": _num(p.get("longitude")),
        "app_id": _str(p.get("appId")),
        "page_path": _str(p.get("pagePath")),
        "contact_id": _str(p.get("wxid")) if kind == "contact_card" else None,
    }
    if kind == "link" and p.get("sourceUrl") and p.get("imageUrl"):
        fields["url"] = _str(p.get("sourceUrl"))  # the second link-card shape
        fields["thumbnail_url"] = _str(p.get("imageUrl"))
    return {k: v for k, v in fields.items() if v is not None}


def normalize(
    msg: YujuMessage,
    *,
    received_at: datetime,
    tenant: str | None,
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
        direction="outbound" if msg.is_self else "inbound",
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
    )


_ATTACHMENT_FIELDS = tuple(Attachment.model_fields)


def chat_fields(
    msg: FastMessage,
    *,
    received_at: datetime,
    tenant: str | None,
    conversation_mode: Channel | None = None,
    received_iso: str | None = None,
) -> dict[str, Any]:
    """`normalize` for the fast path: the `ChatMessage` as the dict its JSON is, built
    directly (same fields, same order, same values; `tests/unit/test_normalizer_fast.py`
    proves it against `normalize` and validates the result as a `ChatMessage`).
    `received_iso`: `received_at` already formatted (from a canonical `ce_time`)."""
    kind = kind_of(msg.type)
    role, channel = sender_of(msg, conversation_mode)
    payload = msg.payload
    present = _attachment_fields(kind, payload)
    received = received_iso or iso_utc(received_at)
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
        "direction": "outbound" if msg.is_self else "inbound",
        "sender_role": role,
        "channel": channel,
        "kind": kind,
        "type_code": msg.type,
        "text": text_of(kind, payload),
        "mentions": mentions_of(payload),
        "mentions_bot": bool(msg.mention_self),
        "attachment": {f: present.get(f) for f in _ATTACHMENT_FIELDS} if present else None,
        "source": msg.source,
        "sent_at": received if msg.timestamp is None else iso_utc(msg.timestamp),
        "received_at": received,
        "payload": payload,
    }


_FORMATTED_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
"""The shape `format_time` writes: such a `ce_time` that parses is passed on as it is."""


def _received(record: InputRecord) -> tuple[datetime, str | None]:
    """`received_at_of`, and the `ce_time` header when it is what `format_time` would write
    for that moment (the ingress wrote it so), which spares formatting it again."""
    ce_time = record.headers.get("ce_time")
    if ce_time:
        try:
            moment = parse_time(ce_time)
        except ValueError:
            pass
        else:
            return moment, ce_time if _FORMATTED_TIME.fullmatch(ce_time) else None
    return datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC), None


def received_at_of(record: InputRecord) -> datetime:
    """`ce_time` set by the ingress when it received the callback; else the record time."""
    return _received(record)[0]


def handle(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
    """Engine handler: parse, drop retries, normalize, remember the conversation's mode.

    The common callback shape takes the fast path (`processors._normalizer_fast`: orjson,
    the output dict built directly); anything unusual the tolerant model and `normalize`."""
    if record.value is None:
        raise ValueError("record has no value (a tombstone is not a message callback)")
    fast = parse_fast(record.value)
    if fast is not None:
        return _handle_fast(record, ctx, fast)
    msg = YujuMessage.model_validate_json(record.value)
    seen = ctx.store(SEEN_STORE)
    if msg.message_id in seen:
        return ()
    seen.set(msg.message_id, 1)
    modes = ctx.store(MODE_STORE)
    conversation = msg.conversation_id
    mode = modes.get(conversation)
    received_at, ce_time = _received(record)
    out = normalize(
        msg,
        received_at=received_at,
        tenant=record.headers.get("tenant") or None,
        conversation_mode=mode,
    )
    if out.direction == "outbound" and mode != out.channel:
        modes.set(conversation, out.channel)
    headers = event_headers(
        ce_id=out.message_id,
        source=CE_SOURCE,
        ce_type=_CE_TYPE,
        time=ce_time or out.received_at,
        tenant=out.tenant,
    )
    return (OutputRecord(CHAT_MESSAGE, conversation, out, headers),)


def _handle_fast(record: InputRecord, ctx: Context, msg: FastMessage) -> Iterable[OutputRecord]:
    """`handle` on the fast path: the same steps, the output serialized from a dict."""
    seen = ctx.store(SEEN_STORE)
    if msg.message_id in seen:
        return ()
    seen.set(msg.message_id, 1)
    modes = ctx.store(MODE_STORE)
    conversation = msg.conversation_id
    mode = modes.get(conversation)
    received_at, ce_time = _received(record)
    tenant = record.headers.get("tenant") or None
    out = chat_fields(
        msg,
        received_at=received_at,
        tenant=tenant,
        conversation_mode=mode,
        received_iso=iso_of_ce_time(ce_time) if ce_time else None,
    )
    if out["direction"] == "outbound" and mode != out["channel"]:
        modes.set(conversation, out["channel"])
    headers = event_headers(
        ce_id=msg.message_id,
        source=CE_SOURCE,
        ce_type=_CE_TYPE,
        time=ce_time or received_at,
        tenant=tenant,
    )
    return (OutputRecord(CHAT_MESSAGE, conversation, orjson.dumps(out), headers),)


def configure(settings: ProcessorSettings) -> Processor:
    """The declaration with the configured deduplication window."""
    retention = settings.normalizer_dedup_retention_ms
    return Processor(
        name="normalizer",
        inputs=(RAW_YUJU_MESSAGE,),
        outputs=(CHAT_MESSAGE,),
        handle=handle,
        stores=(StoreSpec(SEEN_STORE, retention), StoreSpec(MODE_STORE, retention)),
    )


PROCESSOR = Processor(
    name="normalizer",
    inputs=(RAW_YUJU_MESSAGE,),
    outputs=(CHAT_MESSAGE,),
    handle=handle,
    stores=(StoreSpec(SEEN_STORE, 24 * 3600 * 1000), StoreSpec(MODE_STORE, 24 * 3600 * 1000)),
)
"""The declaration with the default deduplication window (24 h)."""
