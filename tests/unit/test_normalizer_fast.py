"""The normalizer's fast path (`processors._normalizer_fast` + `chat_fields`) against the
model path (`YujuMessage` + `normalize`), on generated bodies with every quirk PLATFORM.md
lists: both formats, stray whitespace in keys, timestamps in s / ms / µs as numbers or
strings or ISO text or junk, numbers as strings, unknown types, missing optional fields,
snake_case keys, odd payloads. Where the fast path answers, its output must be byte-identical
to the model path's and validate as a `ChatMessage`; where the model rejects a body, the
fast path must not answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from processors._normalizer_fast import (
    _FLOAT,
    _PLAIN,
    _payload_flags,
    _plain_message,
    iso_utc,
    parse_fast,
)
from processors.engine.testing import LocalRun, input_record
from processors.normalizer import KINDS, PROCESSOR, chat_fields, chat_json, normalize
from schemas._lenient import strip_keys
from schemas.chat import ChatMessage
from schemas.cloudevents import header_map
from schemas.yuju import YujuMessage
from tests.support.samples import SAMPLES
from tests.support.yuju_messages import raw_messages

RECEIVED = datetime(2026, 11, 22, 8, 0, 0, 123000, tzinfo=UTC)
_MISSING = object()

spaces = st.sampled_from(["", " ", "\t", "\n", "\u3000", "\xa0", "\x1f", "\u2028"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**64, 2**70) | st.integers(-(2**70), -(2**63) - 1),  # orjson reads as float
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
padded_keys = st.tuples(spaces, st.text(max_size=4), spaces).map("".join)
"""Keys that may need stripping, nested anywhere (payload, unused fields)."""
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), padded_keys), inner, max_size=4),
    ),
    max_leaves=12,
)
loose_str = st.one_of(st.text(max_size=10), st.none(), st.integers(), st.floats(), st.booleans())
loose_bool = st.one_of(
    st.booleans(), st.none(), st.integers(0, 2), st.sampled_from(["true", "false", "1", "yes"])
)
type_codes = st.one_of(
    st.sampled_from([*KINDS, 17, 10002, -1]),
    st.integers(-(2**40), 2**40),
    st.sampled_from(["7", " 6 ", "x", "", 7.0, 7.5, True, None]),
)
timestamps = st.one_of(
    st.integers(1, 4_000_000_000),
    st.integers(1_000_000_000_000, 4_000_000_000_000),
    st.integers(1_000_000_000_000_000, 4_000_000_000_000_000),
    st.integers(1, 4_000_000_000_000).map(str),
    st.floats(1e9, 4e12),
    st.sampled_from(["", "string", " 1763798400 ", "2026-11-22T08:00:00Z", "2026-11-22", None]),
    st.sampled_from([0, -5, True, [], {}]),
)
payload_keys = st.sampled_from(
    [
        "text",
        "content",
        "pureText",
        "mention",
        "mentions",
        "fileUrl",
        "voiceUrl",
        "imageUrl",
        "videoUrl",
        "url",
        "sourceUrl",
        "name",
        "size",
        "duration",
        "width",
        "height",
        "thumbnailUrl",
        "title",
        "description",
        "summary",
        "address",
        "latitude",
        "longitude",
        "appId",
        "pagePath",
        "wxid",
    ]
)
mention_items = st.one_of(
    st.text(max_size=6),
    st.integers(),
    st.dictionaries(st.sampled_from(["imContactId", "contactId", "wxid", "id"]), scalars),
)
payloads = st.one_of(
    json_values,
    st.dictionaries(
        payload_keys,
        st.one_of(scalars, st.lists(mention_items, max_size=3)),
        max_size=8,
    ),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "chatId": loose_str,
    "avatar": loose_str,
    "roomTopic": loose_str,
    "roomId": loose_str,
    "imRoomId": loose_str,
    "contactName": loose_str,
    "contactId": loose_str,
    "imContactId": loose_str,
    "payload": payloads,
    "type": type_codes,
    "messageType": type_codes,
    "timestamp": timestamps,
    "token": st.text(max_size=8),
    "botId": loose_str,
    "imBotId": loose_str,
    "contactType": type_codes,
    "coworker": loose_bool,
    "botWxid": loose_str,
    "botWeixin": loose_str,
    "botUserId": loose_str,
    "source": type_codes,
    "sendBy": loose_str,
    "isSelf": loose_bool,
    "mentionSelf": loose_bool,
    "externalUserId": loose_str,
    "roomWecomChatId": loose_str,
    "orgId": loose_str,
    "room_id": loose_str,
    "is_self": loose_bool,
    "extraField": json_values,
}


_PLAIN_STR = st.one_of(st.text(max_size=10), st.none())
_PLAIN_BOOL = st.one_of(st.booleans(), st.none())
_PLAIN_INT = st.one_of(st.sampled_from([*KINDS, 17, 10002]), st.integers(), st.none())
PLAIN: dict[str, st.SearchStrategy[Any]] = {
    **{name: _PLAIN_STR for name, strategy in FIELDS.items() if strategy is loose_str},
    **{name: _PLAIN_BOOL for name, strategy in FIELDS.items() if strategy is loose_bool},
    **{name: _PLAIN_INT for name, strategy in FIELDS.items() if strategy is type_codes},
}
"""The common case: each field with its plain JSON type (half the generated bodies)."""


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A callback body: wrapped or flat, any subset of the fields, keys maybe padded."""
    plain = draw(st.booleans())
    fields: dict[str, Any] = {}
    message_id = draw(
        st.text(max_size=10)
        if plain
        else st.one_of(st.text(max_size=10), st.integers(), st.none(), st.just(_MISSING))
    )
    if message_id is not _MISSING:
        fields["messageId"] = message_id
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=len(FIELDS)))
    for name in names:
        if plain and name in ("room_id", "is_self"):
            continue
        fields[name] = draw(PLAIN.get(name, FIELDS[name]) if plain else FIELDS[name])
    if draw(st.integers(0, 4)) == 0:  # a key with stray whitespace (the doc's tab key)
        key = draw(st.sampled_from(sorted(fields) or ["messageId"]))
        if key in fields:
            fields[draw(spaces) + key + draw(spaces)] = fields.pop(key)
    body: Any = {"data": fields} if draw(st.booleans()) else fields
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([[fields], "text", 3, None, {"data": "x", **fields}]))
    if draw(st.booleans()):
        try:
            return orjson.dumps(body)
        except TypeError:  # an integer over 64 bits: orjson cannot write it, json can
            pass
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


def model_output(value: bytes, mode: Any = None, tenant: str = "acme") -> bytes | None:
    try:
        msg = YujuMessage.model_validate_json(value)
    except ValidationError:
        return None
    out = normalize(msg, received_at=RECEIVED, tenant=tenant, conversation_mode=mode)
    return out.__pydantic_serializer__.to_json(out)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.sampled_from([None, "ai", "human"]), st.sampled_from(["default", "acme"]))
def test_fast_path_equals_model_path(value: bytes, mode: Any, tenant: str) -> None:
    expected = model_output(value, mode, tenant)
    fast = parse_fast(value)
    if fast is None:
        return  # the model path decides (and this test checked it does not crash)
    assert expected is not None, "the fast path accepted a body the model rejects"
    msg = YujuMessage.model_validate_json(value)
    assert fast.conversation_id == msg.conversation_id
    got = chat_json(
        chat_fields(fast, received_iso=iso_utc(RECEIVED), tenant=tenant, conversation_mode=mode)
    )
    if got is None:
        return  # orjson cannot write it (an int over 64 bits): the handler takes the model path
    assert got == expected
    again = ChatMessage.model_validate_json(got)
    assert again.__pydantic_serializer__.to_json(again) == got


@settings(max_examples=500, deadline=None)
@given(json_values, st.lists(st.tuples(spaces, spaces), max_size=3))
def test_payload_flags_are_strip_keys_identity_and_floats(
    value: Any, pads: list[tuple[str, str]]
) -> None:
    if isinstance(value, dict) and value and pads:
        key = next(iter(value))
        for before, after in pads:
            value[before + key + after] = value.get(key)
    flags = _payload_flags(value)
    assert bool(flags & _PLAIN) == (strip_keys(value) is value)
    if flags:
        assert bool(flags & _FLOAT) == _has_float(value)


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)


def test_fast_path_takes_the_realistic_shapes() -> None:
    """The benchmark's and the integration tests' bodies, the documented sample, the flat
    enterprise format and the tab key all go the fast path, and agree with the model."""
    values = [m.value for m in raw_messages(300, seed=3)]
    sample = (SAMPLES / "yuju-message.json").read_bytes()
    flat = orjson.dumps(
        {"messageId": "m", "imContactId": "c", "imBotId": "b", "messageType": 6, "botUserId": "u"}
    )
    tab = orjson.dumps({"data": {"messageId": "m", "roomWecomChatId\t": "", "type": 7}})
    for value in [*values, sample, flat, tab]:
        fast = parse_fast(value)
        assert fast is not None
        got = orjson.dumps(chat_fields(fast, received_iso=iso_utc(RECEIVED), tenant="acme"))
        assert got == model_output(value)


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        b'{"data": {"chatId": "c"}}',
        b'{"data": {"messageId": 5}}',
        b'{"data": {"messageId": "m", "isSelf": "true"}}',
        b'{"data": {"messageId": "m", "type": "7"}}',
        b'{"data": {"message_id": "m"}}',
        b'{"messageId": "m", "payload": {"text": [-9223372036854775809]}}',  # found by hypothesis
        b'{"messageId": "m", "payload": 123456789012345678901}',
        b'{"messageId": "m", "timestamp": 1234567890123456789012}',
        b'{"messageId": "m", "payload": {" text": "t", "n": 123456789012345678901}}',
    ],
)
def test_unusual_bodies_take_the_model_path(value: bytes) -> None:
    assert parse_fast(value) is None


@pytest.mark.parametrize(
    "value",
    [
        # an integer orjson reads inexactly, in a field the output does not use
        b'{"messageId": "m", "extra": 123456789012345678901, "payload": {"text": "t"}}',
        # floats that are floats (the text is searched for long numbers, finds none)
        b'{"messageId": "m", "type": 8, "payload": {"latitude": 39.9, "longitude": 116.4}}',
        b'{"messageId": "m", "timestamp": 1700000000.5, "payload": {"text": "t"}}',
    ],
)
def test_bodies_whose_floats_do_not_matter_keep_the_fast_path(value: bytes) -> None:
    fast = parse_fast(value)
    assert fast is not None
    got = orjson.dumps(chat_fields(fast, received_iso=iso_utc(RECEIVED), tenant="acme"))
    assert got == model_output(value)


def test_handler_outputs_equal_on_both_paths() -> None:
    """The handler over realistic records (dedup and conversation mode included) gives the
    same records whichever path parses: the fast one, or the model with the fast one off."""
    records = [
        input_record("raw.yuju.message.v1", m.value, key=m.key, headers=header_map(m.headers))
        for m in raw_messages(400, seed=5)
    ]
    fast_run = LocalRun(PROCESSOR)
    fast_out = [o for r in records for o in fast_run.feed(r)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("processors.normalizer.parse_fast", lambda value: None)
        model_run = LocalRun(PROCESSOR)
        model_out = [o for r in records for o in model_run.feed(r)]
    assert len(fast_out) == len(model_out) > 300
    for a, b in zip(fast_out, model_out, strict=True):
        assert (a.topic, a.key, list(a.headers)) == (b.topic, b.key, list(b.headers))
        assert isinstance(b.value, ChatMessage)
        assert a.value == b.value.__pydantic_serializer__.to_json(b.value)


def test_keys_to_strip_outside_the_used_fields_keep_the_fast_path() -> None:
    """A padded key inside an unused nested field is not copied away (`_plain_message`
    returns the message dict itself), and the output still equals the model's; one inside
    the payload, which is written out, is stripped first (by `unwrap_message`)."""
    unused = {"data": {"messageId": "m", "type": 7, "extra": {" k ": 1}, "payload": {"text": "t"}}}
    plain = _plain_message(unused)
    assert plain is not None
    assert plain[0] is unused["data"]
    payload = {"text\t": "t", "x": [{" y": 1}]}
    in_payload = {"data": {"messageId": "m", "type": 7, "payload": payload}}
    assert _plain_message(in_payload) is None
    for body in (unused, in_payload):
        value = orjson.dumps(body)
        fast = parse_fast(value)
        assert fast is not None
        got = orjson.dumps(chat_fields(fast, received_iso=iso_utc(RECEIVED), tenant="acme"))
        assert got == model_output(value)


def test_output_orjson_cannot_write_takes_the_model_path() -> None:
    """A payload number that becomes an integer over 64 bits (found by the property test):
    orjson cannot write it, so the handler takes the model path instead of failing the
    record, and the store is written once."""
    value = orjson.dumps({"data": {"messageId": "big", "type": 6, "payload": {"size": 1.9e19}}})
    assert parse_fast(value) is not None
    run = LocalRun(PROCESSOR)
    (out,) = run.feed(input_record("raw.yuju.message.v1", value))
    assert isinstance(out.value, ChatMessage)
    assert out.value.attachment is not None
    assert out.value.attachment.size == 19_000_000_000_000_000_000
    assert run.feed(input_record("raw.yuju.message.v1", value)) == []


def test_attachment_values_are_in_the_models_order() -> None:
    """`chat_fields` writes the attachment dict as it is: its keys must be `Attachment`'s
    fields in order (None where absent), and no attachment when nothing has a value."""
    from processors._chat_mapping import attachment_fields, attachment_values
    from schemas.chat import Attachment

    values = attachment_values("image", {"imageUrl": "u", "width": 3})
    assert values is not None
    assert list(values) == list(Attachment.model_fields)
    assert attachment_fields("image", {"imageUrl": "u", "width": 3}) == {"url": "u", "width": 3}
    assert attachment_values("image", {"other": 1}) is None
    assert attachment_values("text", {"imageUrl": "u"}) is None
