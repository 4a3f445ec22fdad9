"""Pure request logic of the ingress: the route table, body parsing, token removal, auth and
the Kafka record (topic, key, value, CloudEvents headers) of one callback.

No I/O here, so every rule is unit-tested without a server or a broker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from schemas._lenient import MAX_JSON_DEPTH, nested_deeper_than, orjson_reads_exactly
from schemas.cloudevents import event_headers, stable_id
from schemas.insight import InsightFeedback
from schemas.registry import (
    RAW_INSIGHT_FEEDBACK,
    RAW_UNROUTED,
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    by_name,
)
from schemas.yuju import (
    RoomEvent,
    RoomJoin,
    RoomLeave,
    RoomTopic,
    YujuMessage,
    classify_room,
)

__all__ = [
    "ROUTES",
    "Auth",
    "BodyError",
    "RouteKind",
    "Routed",
    "build_record",
    "match_path",
    "parse_body",
    "split_token",
]

RouteKind = Literal["message", "room", "feedback"]

ROUTES: dict[str, RouteKind] = {
    "/notice": "message",
    "/callbacks/yuju/message": "message",
    "/room/joined": "room",
    "/room/left": "room",
    "/room/topic": "room",
    "/callbacks/yuju/room": "room",
    "/v1/bot-message/feedback": "feedback",
    "/callbacks/insight/feedback": "feedback",
}
"""Every callback path (DESIGN.md); each is also accepted under `/<secret prefix>/`."""

SOURCE_YUJU = "wecom-stream/ingress/yuju"
SOURCE_INSIGHT = "wecom-stream/ingress/insight"
_BOM = b"\xef\xbb\xbf"
_MAX_ID_CHARS = 256


class BodyError(ValueError):
    """The body is not JSON (or JSON we do not take); the message says why without quoting
    the body."""


def _no_constants(name: str) -> Any:
    raise BodyError(f"the request body holds {name}, which is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if number in (math.inf, -math.inf):
        raise BodyError("the request body holds a number beyond the range of a 64-bit float")
    return number


def _too_deep(raw: bytes, body: Any) -> bool:
    """Nested deeper than `MAX_JSON_DEPTH`; the bracket count (two C-speed passes) spares
    the walk for every body with fewer brackets than that."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    return nested_deeper_than(body, MAX_JSON_DEPTH)


def match_path(path: str) -> tuple[str | None, RouteKind] | None:
    """(secret prefix or None, route kind) of a request path; None when it is no callback."""
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    kind = ROUTES.get(path)
    if kind is not None:
        return None, kind
    prefix, sep, rest = path[1:].partition("/")
    kind = ROUTES.get("/" + rest) if sep and prefix else None
    return (prefix, kind) if kind is not None else None


def parse_body(raw: bytes) -> Any:
    """The JSON value of a body (UTF-8, an optional BOM); `BodyError` when it is not JSON,
    holds NaN, Infinity or a number beyond a 64-bit float (which would not survive
    unchanged), or nests deeper than `MAX_JSON_DEPTH`."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw.strip():
        raise BodyError("the request body is empty; a callback body is a JSON object")
    body = _loads(raw)
    if _too_deep(raw, body):
        raise BodyError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    return body


def _loads(raw: bytes) -> Any:
    if orjson_reads_exactly(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:  # exact big integers; lone surrogates, which orjson rejects
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants, parse_float=_finite)
    except UnicodeDecodeError:
        raise BodyError("the request body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except BodyError:
        raise
    except RecursionError:
        raise BodyError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise BodyError("the request body is not valid JSON") from None


def _is_token_key(key: object) -> bool:
    return key == "token" or (isinstance(key, str) and len(key) > 5 and key.strip() == "token")


def split_token(body: Any) -> tuple[object, Any]:
    """(the credential, the body without it): `token` removed at the top level and inside the
    `data` wrapper, keys compared after stripping whitespace. The first token found wins."""
    if not isinstance(body, dict):
        return None, body
    fast = _split_token_plain(body)
    return fast if fast is not None else _split_token_any(body)


def _split_token_plain(body: dict[Any, Any]) -> tuple[object, Any] | None:
    """The common shapes, in C-speed string tests: no key at the top mentions `token`, the
    only one mentioning `data` is `data`, and inside it at most the exact key `token` does.
    None when the body needs the general walk."""
    try:
        top = "\0".join(body)
    except TypeError:  # a key that is not a str (not from JSON)
        return None
    if "token" in top or top.count("data") != ("data" in body):
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        return None, dict(body)
    try:
        inner = "\0".join(data)
    except TypeError:
        return None
    count = inner.count("token")
    if count == 0:
        return None, dict(body)
    if count != 1 or "token" not in data:
        return None
    clean = dict(body)
    clean["data"] = stripped = dict(data)
    token = stripped.pop("token")
    return token, clean


def _split_token_any(body: dict[Any, Any]) -> tuple[object, Any]:
    token: object = None
    clean: dict[str, Any] = {}
    for key, value in body.items():
        if _is_token_key(key):
            token = value if token is None else token
            continue
        if isinstance(value, dict) and (
            key == "data" or (isinstance(key, str) and key.strip() == "data")
        ):
            found = [k for k in value if _is_token_key(k)]
            if found:
                if token is None:
                    token = value[found[0]]
                value = {k: v for k, v in value.items() if k not in found}
        clean[key] = value
    return token, clean


class Auth:
    """Constant-time credential checks: yuju `token` → tenant; Insight `?key=` / path prefix.

    A platform whose credential is not configured is closed (every callback refused), unless
    `open_mode` (`WECOM_STREAM_AUTH=open`, local development) accepts it without a check.
    """

    def __init__(
        self,
        tenants: dict[str, str],
        insight_key: str | None,
        insight_tenant: str | None = None,
        *,
        open_mode: bool = False,
    ) -> None:
        self._tokens = [(name, token.encode()) for name, token in tenants.items()]
        self._key = insight_key.encode() if insight_key else None
        self.insight_tenant = insight_tenant
        self.yuju_open = open_mode and not self._tokens
        self.insight_open = open_mode and self._key is None
        self.yuju_closed = not open_mode and not self._tokens
        self.insight_closed = not open_mode and self._key is None

    @property
    def insight_key_set(self) -> bool:
        return self._key is not None

    def tenant_for(self, token: object) -> tuple[bool, str | None]:
        """(authenticated, tenant). Compares against every tenant without an early exit."""
        if self.yuju_open:
            return True, None
        if isinstance(token, bool) or not isinstance(token, str | int):
            return False, None
        given = str(token).encode("utf-8", "surrogatepass")
        found: str | None = None
        for name, expected in self._tokens:
            if hmac.compare_digest(given, expected) and found is None:
                found = name
        return found is not None, found

    def key_ok(self, given: str | None) -> bool:
        """True when `given` is the Insight key (or Insight is open)."""
        if self._key is None:
            return self.insight_open
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._key)


@dataclass(frozen=True, slots=True)
class Routed:
    """The Kafka record of one accepted callback (logical topic, before the prefix)."""

    topic: str
    key: bytes | None
    value: bytes
    ce_id: str
    headers: list[tuple[str, bytes]]


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError: huge ints, lone surrogates
        pass
    try:  # UTF-8 as received: escaping every non-ASCII character would triple CJK text
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: only an escape can carry it
        return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


def _stable(body: Any) -> str:
    if isinstance(body, dict):
        try:
            return stable_id(body)
        except TypeError:
            pass
    canonical = json.dumps(body, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _usable_id(value: str) -> bool:
    if not value or len(value) > _MAX_ID_CHARS:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _message_ids(body: dict[str, Any]) -> tuple[str, str] | None:
    """(messageId, chatId) when both are plain non-empty strings under their exact names: the
    common case, which needs no model (the model gives the same answer: its key is `chatId`
    when present). None sends the body through `YujuMessage`."""
    data = body.get("data")
    fields = data if isinstance(data, dict) else body
    message_id, chat_id = fields.get("messageId"), fields.get("chatId")
    if isinstance(message_id, str) and message_id and isinstance(chat_id, str) and chat_id:
        return message_id, chat_id
    return None


def _classify(kind: RouteKind, body: Any) -> tuple[str, str | None, str | None]:
    """(logical topic, key, messageId-or-None); unrouted when the shape is unknown."""
    if not isinstance(body, dict):
        return RAW_UNROUTED, None, None
    try:
        if kind == "message":
            fast = _message_ids(body)
            if fast is not None:
                return RAW_YUJU_MESSAGE, fast[1], fast[0]
            message = YujuMessage.model_validate(body)
            return RAW_YUJU_MESSAGE, message.conversation_id, message.message_id
        if kind == "room":
            room_kind = classify_room(body)
            room: RoomEvent
            if room_kind == "join":
                room, topic = RoomJoin.model_validate(body), RAW_YUJU_ROOM_JOIN
            elif room_kind == "leave":
                room, topic = RoomLeave.model_validate(body), RAW_YUJU_ROOM_LEAVE
            else:
                room, topic = RoomTopic.model_validate(body), RAW_YUJU_ROOM_TOPIC
            return topic, room.im_room_id, None
        feedback = InsightFeedback.model_validate(body)
    except ValueError:  # ValidationError, or strip_keys refusing a nesting too deep
        return RAW_UNROUTED, None, None
    return RAW_INSIGHT_FEEDBACK, feedback.bot_id, None


def build_record(
    kind: RouteKind, clean_body: Any, *, tenant: str | None, received: datetime | str
) -> Routed:
    """Topic, key, value (the body without its token), `ce_id` and headers of one callback.
    `received` as a str is the `ce_time` already formatted (`_clock.ce_time`)."""
    topic, key, message_id = _classify(kind, clean_body)
    ce_id = message_id if message_id is not None and _usable_id(message_id) else None
    if ce_id is None:
        ce_id = _stable(clean_body)
    headers = event_headers(
        ce_id=ce_id,
        source=SOURCE_INSIGHT if kind == "feedback" else SOURCE_YUJU,
        ce_type=by_name(topic).ce_type,
        time=received,
        tenant=tenant,
    )
    return Routed(
        topic=topic,
        key=None if key is None else key.encode("utf-8", "surrogatepass"),
        value=_dumps(clean_body),
        ce_id=ce_id,
        headers=headers,
    )
