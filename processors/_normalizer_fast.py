"""The normalizer's fast parse of the common callback shape: `orjson.loads` and a direct
read of the fields the `ChatMessage` needs, instead of `YujuMessage.model_validate_json`
(about 20 µs per record with the tolerant model's Lenient wrappers). Private to the
normalizer.

`parse_fast` returns None for anything it is not sure to read exactly as the model does,
and the normalizer then takes the model path: a body that orjson cannot parse, or would
read inexactly where it matters (an integer beyond 64 bits, which orjson reads as a float,
in `timestamp` or `payload`; the text is searched for such a number only when a float is
there, as a used field of another type rejects a float anyway); a body that is not an
object; a used field whose JSON type is not the plain one (a number or junk where
a string is expected, a string or number for a boolean, anything but an integer for `type` /
`source`, a non-string `messageId` / `chatId`); a snake_case field name (the model also
accepts those, `populate_by_name`). What it does read, it reads with the model's own
helpers (`unwrap_message`: `data` wrapper and key stripping; `parse_epoch`: timestamps)
and with the model's alias order (the first alias present wins, as with `AliasChoices`).
`tests/unit/test_normalizer_fast.py` checks with generated bodies that both paths give
the same output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic.alias_generators import to_camel

from schemas._lenient import orjson_reads_exactly
from schemas.yuju import YujuMessage, parse_epoch, unwrap_message

__all__ = ["FastMessage", "is_canonical_ce_time", "iso_of_ce_time", "iso_utc", "parse_fast"]

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
    sent_at: str | None
    """`timestamp` as the model's datetime serializes (`iso_utc`); None when absent."""
    payload: Any
    external_user_id: str | None = None
    room_wecom_chat_id: str | None = None
    contact_type: int | None = None
    bot_wxid: str | None = None
    bot_weixin: str | None = None
    avatar: str | None = None

    @property
    def conversation_id(self) -> str:
        """As `YujuMessage.conversation_id`."""
        if self.chat_id:
            return self.chat_id
        return f"{self.bot_id or ''}:{self.room_id or self.contact_id or ''}"


_STR = frozenset({str, type(None)})
_BOOL = frozenset({bool, type(None)})
_INT = frozenset({int, type(None)})


_SHAPES: dict[tuple[str, ...], int] = {}
"""Key tuples of dicts seen and their `_PLAIN` / `_SNAKE` flags. Callbacks come in a handful
of shapes and orjson hands out its cached key strings, so a lookup is cheaper than stripping
and checking every key (bounded, as every cache here: `_remember`)."""
_CACHE_MAX = 4096
"""Entries of each cache here before it starts over."""
_K = TypeVar("_K")
_V = TypeVar("_V")
_PLAIN = 1
"""No key needs stripping."""
_SNAKE = 2
"""A snake_case field name is among the keys (the model path reads those)."""
_FLOAT = 4
"""A float is among the values (`_payload_flags`)."""


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """Store `value` in one of this module's caches (each starts over at `_CACHE_MAX`
    entries: callbacks repeat a handful of shapes and nearby seconds) and return it."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _shape(obj: dict[str, Any]) -> int:
    """The flags of the keys of `obj` itself (not of nested dicts)."""
    keys = tuple(obj)
    flags = _SHAPES.get(keys)
    if flags is None:
        plain = all(map(str.__eq__, map(str.strip, keys), keys))  # JSON keys are str
        snake = not _SNAKE_NAMES.isdisjoint(keys)
        flags = _remember(_SHAPES, keys, (_PLAIN if plain else 0) | (_SNAKE if snake else 0))
    return flags


def _payload_flags(value: Any) -> int:
    """`_PLAIN` when no key anywhere in `value` needs stripping (`strip_keys(value)` would
    return `value` itself), with `_FLOAT` when a float is anywhere in it; 0 when a key
    needs stripping."""
    kind = type(value)
    if kind is dict:
        if not _shape(value) & _PLAIN:
            return 0
        values: Any = value.values()
    elif kind is list:
        values = value
    else:
        return _PLAIN | _FLOAT if kind is float else _PLAIN
    flags = _PLAIN
    for item in values:
        kind = type(item)
        if kind is dict or kind is list:
            inner = _payload_flags(item)
            if not inner:
                return 0
            flags |= inner
        elif kind is float:
            flags |= _FLOAT
    return flags


def _plain_message(body: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """The message fields of a callback, the `data` object or the body, where
    `unwrap_message(body)` would give the same fields without copying, and none of them is a
    snake_case name: no key of the message (nor of the top level, which finds `data`) and no
    key inside `payload` (which is written out) needs stripping. Keys inside other nested
    values are not looked at: no field read from them is used. With it, the payload's
    `_payload_flags` (`_FLOAT`: a float is in it). None: let `unwrap_message` strip them all
    and check the names."""
    flags = _shape(body)
    if not flags & _PLAIN:
        return None
    inner = body.get("data")
    message = body
    if type(inner) is dict:
        message = inner
        flags = _shape(inner)
    if flags != _PLAIN:
        return None
    payload = _payload_flags(message.get("payload"))
    if not payload:
        return None
    return message, payload


def _epoch_text(value: Any) -> str | None:
    """`iso_utc(parse_epoch(value))` (None for no time), quicker for the common integer
    milliseconds (as a number or a string of digits) between 1973 and 2096: there the model's
    datetime is exactly seconds + milliseconds (`ms / 1000` as a float is within 0.5 µs of
    the exact value), so the text is the second's text, cached, and the milliseconds as six
    digits (none when zero). Anything else goes to `parse_epoch`."""
    kind = type(value)
    if kind is str and len(value) <= 13 and value.isascii() and value.isdigit():
        number = int(value)  # short: a digit string past 4,300 digits would raise here
    elif kind is int:
        number = value
    else:
        number = 0
    if 100_000_000_000 <= number < 4_000_000_000_000:
        seconds, millis = divmod(number, 1000)
        second = _SECOND_TEXTS.get(seconds)
        if second is None:
            text = datetime.fromtimestamp(seconds, tz=UTC).isoformat()[:19]
            second = _remember(_SECOND_TEXTS, seconds, text)
        return second + _MILLIS_TEXTS[millis]
    moment = parse_epoch(value)
    return None if moment is None else iso_utc(moment)


_MILLIS_TEXTS = ("Z", *(f".{n:03d}000Z" for n in range(1, 1000)))
"""The end of the text per millisecond: six digits, none when zero (as pydantic writes)."""
_SECOND_TEXTS: dict[int, str] = {}
"""`YYYY-MM-DDTHH:MM:SS` of recent epoch seconds."""


def _either(message: dict[str, Any], first: str, second: str) -> Any:
    """The value of `first` when the key is present (even null), else of `second`: the
    first alias present wins, as with pydantic's `AliasChoices`."""
    found = message.get(first, _MISSING)
    return message.get(second) if found is _MISSING else found


def parse_fast(value: bytes) -> FastMessage | None:
    """The message fields of a raw callback, or None: then parse with `YujuMessage`."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    plain = _plain_message(body)
    if plain is None:
        message = unwrap_message(body)  # keys stripped
        if type(message) is not dict or not _SNAKE_NAMES.isdisjoint(message):
            return None
        payload_flags = _FLOAT  # not walked: check the text
    else:
        message, payload_flags = plain
    body = message
    get = body.get
    message_id = get("messageId")
    chat_id = get("chatId")
    bot_id = _either(body, "botId", "imBotId")
    contact_id = _either(body, "contactId", "imContactId")
    room_id = _either(body, "roomId", "imRoomId")
    type_code = _either(body, "type", "messageType")
    contact_name = get("contactName")
    room_topic = get("roomTopic")
    send_by = get("sendBy")
    is_self = get("isSelf")
    coworker = get("coworker")
    mention_self = get("mentionSelf")
    source = get("source")
    timestamp = get("timestamp")
    bot_weixin = _either(body, "botWeixin", "botUserId")
    external_user_id = get("externalUserId")
    room_wecom_chat_id = get("roomWecomChatId")
    contact_type = get("contactType")
    bot_wxid = get("botWxid")
    avatar = get("avatar")
    if (payload_flags & _FLOAT or type(timestamp) is float) and not orjson_reads_exactly(value):
        return None  # the float may be an integer beyond 64 bits, which orjson reads so
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
        or type(contact_type) not in _INT
        or type(bot_weixin) not in _STR
        or type(external_user_id) not in _STR
        or type(room_wecom_chat_id) not in _STR
        or type(bot_wxid) not in _STR
        or type(avatar) not in _STR
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
        _epoch_text(timestamp),
        get("payload"),
        external_user_id,
        room_wecom_chat_id,
        contact_type,
        bot_wxid,
        bot_weixin,
        avatar,
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


_MILLIS_TAILS = frozenset(f".{n:03d}Z" for n in range(1000))
_SECOND_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_VALID_SECONDS: dict[str, bool] = {}


def is_canonical_ce_time(ce_time: str) -> bool:
    """`ce_time` is in `format_time`'s exact shape and `parse_time` accepts it: checked by
    parts, the `YYYY-MM-DDTHH:MM:SS` part once per second (cached, bounded)."""
    if ce_time[19:] not in _MILLIS_TAILS:
        return False
    second = ce_time[:19]
    valid = _VALID_SECONDS.get(second)
    if valid is None:
        valid = _SECOND_SHAPE.fullmatch(second) is not None
        if valid:
            try:
                datetime.fromisoformat(second)
            except ValueError:
                valid = False
        _remember(_VALID_SECONDS, second, valid)
    return valid
