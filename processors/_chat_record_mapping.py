"""Pure mapping of a backfilled chat-record entry (`raw.yuju.chat-record.v1`,
`schemas.chat_record.ChatRecordEntry`) to its `ChatMessage`.

| message_type | sender_type | channel | sender_role | direction |
|---|---|---|---|---|
| AI对话 | 用户 | ai | customer | inbound |
| AI对话 | 客服 | ai | bot | outbound |
| 人工对话 | 用户 | human | customer | inbound |
| 人工对话 | 客服 | human | agent | outbound |

Human-channel contents carry the platform's display prefix (`人工回复: ` and `客服回复: `
for the agent, `访客发送: ` for the customer; a full-width colon is accepted too): `text` is
the content without it, and only a prefix matching the sender is removed (a customer who
types "人工回复: " keeps it). `payload` keeps the API's message object unchanged.

Values the API has not documented are not errors: an unknown `message_type` is `human` when
the content carries a display prefix, else `ai`; an unknown or absent `sender_type` is told
by the prefix (an agent's prefix: the agent; the customer's `访客发送`: the customer) and,
without one, is `sender_role: unknown` (direction `inbound`: not known to be the company's
side) rather than silently a customer; `payload` keeps the raw value. Every chat-record
message is `kind` text (the API returns text contents only).
"""

from __future__ import annotations

import re
from datetime import datetime

from schemas.chat import Channel, ChatMessage, SenderRole
from schemas.chat_record import (
    CHANNEL_BY_MESSAGE_TYPE,
    SENDER_ROLE_BY_SENDER_TYPE,
    ChatRecordEntry,
    entry_id,
)

__all__ = ["chat_record_message", "split_prefix"]

_PREFIX = re.compile(r"^(人工回复|客服回复|访客发送)[:：] ?")
_AGENT_PREFIXES = frozenset({"人工回复", "客服回复"})


def split_prefix(content: str) -> tuple[str | None, str]:
    """(the display prefix's word, or None; the content without it)."""
    match = _PREFIX.match(content)
    if match is None:
        return None, content
    return match.group(1), content[match.end() :]


def _channel_and_sender(
    message_type: str, sender_type: str, prefix: str | None
) -> tuple[Channel, SenderRole]:
    channel: Channel
    known_channel = CHANNEL_BY_MESSAGE_TYPE.get(message_type)
    if known_channel == "ai":
        channel = "ai"
    elif known_channel == "human" or prefix is not None:
        channel = "human"
    else:
        channel = "ai"
    known_role = SENDER_ROLE_BY_SENDER_TYPE.get(sender_type)
    if known_role is None and prefix is None:
        return channel, "unknown"
    is_agent_side = known_role == "agent" if known_role else prefix in _AGENT_PREFIXES
    if not is_agent_side:
        return channel, "customer"
    return channel, "agent" if channel == "human" else "bot"


def _text(content: str, channel: Channel, role: SenderRole) -> str:
    prefix, rest = split_prefix(content)
    if prefix is None or channel != "human":
        return content
    if (prefix in _AGENT_PREFIXES) == (role != "customer"):
        return rest
    return content


def chat_record_message(
    entry: ChatRecordEntry, *, received_at: datetime, tenant: str
) -> ChatMessage:
    """The `ChatMessage` of one chat-record entry; `received_at`: when it was fetched."""
    message = entry.message
    content = message.get("content")
    text = content if isinstance(content, str) else None
    message_type = message.get("message_type")
    sender_type = message.get("sender_type")
    prefix = split_prefix(text)[0] if text is not None else None
    channel, role = _channel_and_sender(
        message_type if isinstance(message_type, str) else "",
        sender_type if isinstance(sender_type, str) else "",
        prefix,
    )
    return ChatMessage(
        message_id=entry_id(entry),
        conversation_id=entry.chat_id,
        tenant=tenant,
        bot_id=None,
        contact_id=entry.customer_id,
        contact_name=None,
        room_id=None,
        room_topic=None,
        direction="outbound" if role in ("agent", "bot") else "inbound",
        sender_role=role,
        channel=channel,
        kind="text",
        type_code=None,
        text=_text(text, channel, role) if text is not None else None,
        mentions=[],
        attachment=None,
        source=None,
        sent_at=received_at,
        received_at=received_at,
        payload=message,
        origin="chat_record",
    )
