"""The normalizer's fast parse of the common callback shape: `orjson.loads` and a direct
read of the fields the `ChatMessage` needs, instead of `YujuMessage.model_validate_json`
(about 20 µs per record with the tolerant model's Lenient wrappers). Private to the
normalizer.

`parse_fast` returns None for anything it is not sure to read exactly as the model does,
and the normalizer then takes the model path: a body that orjson cannot parse; a body that
is not an object; a used field whose JSON type is not the plain one (a number or junk where
a string is expected, a string or number for a boolean, anything but an integer for `type` /
`source`, a non-string `messageId` / `chatId`); a snake_case field name (the model also
accepts those, `populate_by_name`). What it does read, it reads with the model's own
helpers (`unwrap_message`: `data` wrapper and key stripping; `parse_epoch`: timestamps)
and with the model's alias order (the first alias present wins, as with `AliasChoices`).
`tests/unit/test_normalizer_fast.py` checks with generated bodies that both paths give
the same output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress
from typing import Any

import orjson
from pydantic.alias_generators import to_camel

from schemas.yuju import YujuMessage, parse_epoch, unwrap_message

__all__ = ["FastMessage", "iso_of_ce_time", "iso_utc", "parse_fast"]

_SNAKE_NAMES = frozenset(n for n in YujuMessage.model_fields if to_camel(n) != n)
"""Field names the model would also accept as keys (`populate_by_name`): model path."""
_MISSING = object()


@dataclass(slots=True)
class FastMessage:
    """The `YujuMessage` fields the normalizer uses, read by `parse_fast`."""

    message_id: str
    chat_id: str | None
    bot_id: str | None
    contact_id: str | None
    contact_name: str | None
    room_id: str | None
    room_topic: str | None
    send_by: str | None
    is_self: bool | None
    coworker: bool | None
    mention_self: bool | None
    type: int | None
    source: int | None
    timestamp: datetime | None
    payload: Any

    @property
    def conversation_id(self) -> str:
        """As `YujuMessage.conversation_id`."""
        if self.chat_id:
            return self.chat_id
        return f"{self.bot_id or ''}:{self.room_id or self.contact_id or ''}"


_STR = frozenset({str, type(None)})
_BOOL = frozenset({bool, type(None)})
_INT = frozenset({int, type(None)})


def _plain_keys(obj: dict[str, Any] | list[Any]) -> bool:
    """No key anywhere needs stripping, i.e. `strip_keys(obj)` would return `obj` itself
    (the same test, with the per-key loop in C: JSON keys are str)."""
    if isinstance(obj, dict):
        keys = list(obj)
        if list(map(str.strip, keys)) != keys:
            return False
        values: list[Any] = list(obj.values())
    else:
        values = obj
    # the nested containers, selected in C
    return all(map(_plain_keys, compress(values, map(_IS_CONTAINER, map(type, values)))))


_IS_CONTAINER = frozenset({dict, list}).__contains__


def _epoch(value: Any) -> datetime | None:
    """`parse_epoch(value)`, quicker for the common integer milliseconds (as a number or a
    string of digits) between 1973 and 2096, where `ms / 1000` as a float is within 0.5 µs
    of the exact value and so gives the same datetime; anything else goes to `parse_epoch`."""
    kind = type(value)
    if kind is str and value.isascii() and value.isdigit():
        number = int(value)
    elif kind is int:
        number = value
    else:
        return parse_epoch(value)
    if 100_000_000_000 <= number < 4_000_000_000_000:
        return datetime.fromtimestamp(number / 1000, tz=UTC)
    return parse_epoch(value)


def parse_fast(value: bytes) -> FastMessage | None:
    """The message fields of a raw callback, or None: then parse with `YujuMessage`."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(body) is dict and _plain_keys(body):  # `strip_keys(body) is body`: unwrap only
        inner = body.get("data")
        if type(inner) is dict:
            body = inner
    else:
        body = unwrap_message(body)  # the model's own unwrapping, keys stripped
    if type(body) is not dict or not _SNAKE_NAMES.isdisjoint(body):
        return None
    get = body.get
    message_id = get("messageId")
    chat_id = get("chatId")
    # the first alias present wins, as with pydantic's AliasChoices
    bot_id = get("botId", _MISSING)
    if bot_id is _MISSING:
        bot_id = get("imBotId")
    contact_id = get("contactId", _MISSING)
    if contact_id is _MISSING:
        contact_id = get("imContactId")
    room_id = get("roomId", _MISSING)
    if room_id is _MISSING:
        room_id = get("imRoomId")
    type_code = get("type", _MISSING)
    if type_code is _MISSING:
        type_code = get("messageType")
    contact_name = get("contactName")
    room_topic = get("roomTopic")
    send_by = get("sendBy")
    is_self = get("isSelf")
    coworker = get("coworker")
    mention_self = get("mentionSelf")
    source = get("source")
    if (
        type(message_id) is not str
        or type(chat_id) not in _STR
        or type(bot_id) not in _STR
        or type(contact_id) not in _STR
        or type(room_id) not in _STR
        or type(contact_name) not in _STR
        or type(room_topic) not in _STR
        or type(send_by) not in _STR
        or type(is_self) not in _BOOL
        or type(coworker) not in _BOOL
        or type(mention_self) not in _BOOL
        or type(type_code) not in _INT
        or type(source) not in _INT
    ):
        return None
    return FastMessage(
        message_id,
        chat_id,
        bot_id,
        contact_id,
        contact_name,
        room_id,
        room_topic,
        send_by,
        is_self,
        coworker,
        mention_self,
        type_code,
        source,
        _epoch(get("timestamp")),
        get("payload"),
    )


def iso_utc(moment: datetime) -> str:
    """A UTC datetime as pydantic serializes it: ISO 8601, microseconds only when not zero,
    `Z`."""
    text = moment.isoformat()
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    return text


def iso_of_ce_time(ce_time: str) -> str:
    """`iso_utc(parse_time(ce_time))` for a `ce_time` in `format_time`'s exact shape
    (`YYYY-MM-DDTHH:MM:SS.mmmZ`), by slicing: milliseconds as six digits, none when zero."""
    if ce_time[20:23] == "000":
        return ce_time[:19] + "Z"
    return ce_time[:23] + "000Z"
