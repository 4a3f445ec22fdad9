"""Pure ingress rules: paths, body parsing, token removal, auth, the record of each sample."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress.routing import (
    Auth,
    BodyError,
    build_record,
    match_path,
    parse_body,
    split_token,
)
from schemas.cloudevents import header_map
from tests.support.samples import SAMPLES

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def sample(name: str) -> dict[str, object]:
    body: dict[str, object] = orjson.loads((SAMPLES / name).read_bytes())
    return body


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/notice", (None, "message")),
        ("/notice/", (None, "message")),
        ("/callbacks/yuju/message", (None, "message")),
        ("/room/joined", (None, "room")),
        ("/room/left", (None, "room")),
        ("/room/topic", (None, "room")),
        ("/callbacks/yuju/room", (None, "room")),
        ("/v1/bot-message/feedback", (None, "feedback")),
        ("/callbacks/insight/feedback", (None, "feedback")),
        ("/s3cret/v1/bot-message/feedback", ("s3cret", "feedback")),
        ("/s3cret/notice", ("s3cret", "message")),
        ("/", None),
        ("/nope", None),
        ("//notice", None),
        ("/a/b/notice", None),
    ],
)
def test_match_path(path: str, expected: object) -> None:
    assert match_path(path) == expected


def test_parse_body_accepts_json_bom_and_big_ints() -> None:
    assert parse_body(b'{"a": 1}') == {"a": 1}
    assert parse_body(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert parse_body(b'{"n": 123456789012345678901234567890}') == {
        "n": 123456789012345678901234567890
    }


@pytest.mark.parametrize("raw", [b"", b"  ", b"not json", b"{", b"\xff\xfe{}", b"[" * 100_000])
def test_parse_body_rejects_non_json_without_quoting_it(raw: bytes) -> None:
    with pytest.raises(BodyError) as info:
        parse_body(raw)
    assert "not json" not in str(info.value)


def test_split_token_removes_it_at_top_level_and_inside_data() -> None:
    token, clean = split_token({"token": "T1", "a": 1})
    assert (token, clean) == ("T1", {"a": 1})
    token, clean = split_token({"data": {"token": "T2", "messageId": "m"}, "x": 1})
    assert (token, clean) == ("T2", {"data": {"messageId": "m"}, "x": 1})
    token, clean = split_token({" token\t": "T3", "data": {"token": "T4"}})
    assert token == "T3"
    assert clean == {"data": {}}
    assert split_token([1, 2]) == (None, [1, 2])


def test_auth_matches_tenants_and_insight_key() -> None:
    auth = Auth({"acme": "TOKEN1", "beta": "TOKEN2"}, "k3y", insight_tenant="acme")
    assert auth.tenant_for("TOKEN2") == (True, "beta")
    assert auth.tenant_for("TOKEN1") == (True, "acme")
    assert auth.tenant_for("TOKEN") == (False, None)
    assert auth.tenant_for(None) == (False, None)
    assert auth.tenant_for({"a": 1}) == (False, None)
    assert auth.tenant_for("\ud800") == (False, None)
    assert auth.key_ok("k3y")
    assert not auth.key_ok("k3")
    assert not auth.key_ok(None)
    open_auth = Auth({}, None, open_mode=True)
    assert open_auth.yuju_open
    assert open_auth.insight_open
    assert open_auth.tenant_for(None) == (True, None)
    assert open_auth.key_ok(None)


def test_a_platform_without_credential_is_closed_unless_open_mode_is_asked() -> None:
    """Fail closed (issue 30): before, no tenants meant every token was accepted and no key
    meant every Insight callback was."""
    yuju_only = Auth({"acme": "TOKEN1"}, None)
    assert yuju_only.insight_closed
    assert not yuju_only.key_ok(None)
    assert not yuju_only.key_ok("anything")
    insight_only = Auth({}, "k3y")
    assert insight_only.yuju_closed
    assert insight_only.tenant_for(None) == (False, None)
    assert insight_only.tenant_for("TOKEN1") == (False, None)
    # open mode relaxes only the platform without a credential
    mixed = Auth({"acme": "TOKEN1"}, None, open_mode=True)
    assert mixed.key_ok(None)
    assert mixed.tenant_for("nope") == (False, None)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"x": NaN}', "NaN"),
        (b'{"x": Infinity}', "Infinity"),
        (b'{"x": -Infinity}', "-Infinity"),
        (b'{"x": 1e400}', "64-bit float"),
        (b'{"x": -1e400, "n": 12345678901234567890}', "64-bit float"),
        (b'{"x": ' + b"[" * 65 + b"]" * 65 + b"}", "deeper than 64"),
        (b"[" * 64 + b'{"a":' * 40 + b"1" + b"}" * 40 + b"]" * 64, "deeper than 64"),
        (b'{"x":' * 3000 + b"1" + b"}" * 3000, "deeper than 64"),
        (b"[" * 100_000 + b"]" * 100_000, "deeper than 64"),
    ],
)
def test_parse_body_refuses_what_would_not_survive_unchanged(raw: bytes, says: str) -> None:
    """NaN/Infinity are not JSON and were stored as null; 1e400 became null too; deep
    nesting raised RecursionError later (a 500). All are 400 now, saying why."""
    with pytest.raises(BodyError, match=says):
        parse_body(raw)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    body = parse_body(b'{"token": "T", "x": ' + b"[" * 63 + b"]" * 63 + b"}")
    record = build_record("room", split_token(body)[1], tenant=None, received=NOW)
    assert record.topic == "raw.unrouted.v1"  # no imRoomId: unrouted, but no error


def test_values_are_kept_utf8_when_a_big_integer_needs_the_slow_encoder() -> None:
    """The ensure_ascii fallback tripled CJK text for a body with a big integer, so a body
    under the limit could make a record Kafka refuses; now only a lone surrogate escapes."""
    body = parse_body('{"n": 123456789012345678901234567890, "t": "你好"}'.encode())
    value = build_record("message", body, tenant=None, received=NOW).value
    assert value == '{"n":123456789012345678901234567890,"t":"你好"}'.encode()
    lone = parse_body('{"t": "\\ud800 你"}'.encode())
    assert build_record("message", lone, tenant=None, received=NOW).value.isascii()


def test_message_record_keyed_by_chat_id_with_message_id_as_ce_id() -> None:
    body = sample("yuju-message.json")
    token, clean = split_token(body)
    assert token == "string"
    record = build_record("message", clean, tenant="acme", received=NOW)
    assert record.topic == "raw.yuju.message.v1"
    assert record.key == b"string"
    assert record.ce_id == "string"
    value = orjson.loads(record.value)
    assert "token" not in value["data"]
    assert value["data"]["payload"] == {"content": "string"}
    headers = header_map(record.headers)
    assert headers["ce_type"] == "wecomstream.raw.yuju.message.v1"
    assert headers["ce_source"] == "wecom-stream/ingress/yuju"
    assert headers["ce_time"] == "2026-11-22T12:00:00.000Z"
    assert headers["tenant"] == "acme"
    assert headers["content-type"] == "application/json"


def test_message_without_chat_id_falls_back_to_bot_and_room() -> None:
    clean = {"messageId": "m1", "botId": "b", "roomId": "r"}
    assert build_record("message", clean, tenant=None, received=NOW).key == b"b:r"


@pytest.mark.parametrize(
    ("members_key", "topic"),
    [
        ("leftMember", "raw.yuju.room-leave.v1"),
        ("leftMembers", "raw.yuju.room-leave.v1"),
        ("joinMember", "raw.yuju.room-join.v1"),
        ("members", "raw.yuju.room-join.v1"),
        (None, "raw.yuju.room-topic.v1"),
    ],
)
def test_room_records_classified_by_content(members_key: str | None, topic: str) -> None:
    body = sample("yuju-room-leave.json")
    members = body.pop("leftMember")
    if members_key:
        body[members_key] = members
    _, clean = split_token(body)
    record = build_record("room", clean, tenant=None, received=NOW)
    assert record.topic == topic
    assert record.key == b"string"
    assert "tenant" not in header_map(record.headers)
    # ce_id: hash of the body without its token, the same for a retry with another token
    body["token"] = "other"
    _, again = split_token(body)
    assert build_record("room", again, tenant=None, received=NOW).ce_id == record.ce_id


@pytest.mark.parametrize(
    ("members_key", "members", "topic"),
    [
        ("joinMember", [{"imContactId": "a"}, {"nickName": "no id"}], "raw.yuju.room-join.v1"),
        ("joinMembers", [{"imContactId": "a"}, "junk", 7], "raw.yuju.room-join.v1"),
        ("leftMember", {"imContactId": "a"}, "raw.yuju.room-leave.v1"),
        ("leftMembers", [{"imContactId": None}, {"imContactId": "b"}], "raw.yuju.room-leave.v1"),
    ],
)
def test_a_room_body_with_one_bad_member_entry_is_routed_whole(
    members_key: str, members: object, topic: str
) -> None:
    """Issue 32: one member without `imContactId`, or `leftMember` sent as one object, sent
    the whole body to `raw.unrouted.v1` (the room models were strict per entry); now the
    body goes to its room topic, unchanged, and membership drops only the bad entry."""
    body = sample("yuju-room-leave.json")
    del body["leftMember"]
    body[members_key] = members
    _, clean = split_token(body)
    record = build_record("room", clean, tenant="acme", received=NOW)
    assert record.topic == topic
    assert record.key == b"string"
    assert orjson.loads(record.value)[members_key] == members  # nothing lost


def test_feedback_record_keyed_by_bot_id() -> None:
    body = sample("insight-feedback.json")
    record = build_record("feedback", body, tenant="beta", received=NOW)
    assert record.topic == "raw.insight.feedback.v1"
    assert record.key == b"f7bb8f07-dc5c-416b-88d4-c1568f923857"
    assert header_map(record.headers)["ce_source"] == "wecom-stream/ingress/insight"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("message", {"hello": 1}),
        ("message", [1, 2]),
        ("room", {"chatId": "c"}),
        ("feedback", {"botId": "b"}),
        ("feedback", "text"),
    ],
)
def test_unknown_shapes_go_to_unrouted_without_key(kind: str, body: object) -> None:
    record = build_record(kind, body, tenant=None, received=NOW)  # type: ignore[arg-type]
    assert record.topic == "raw.unrouted.v1"
    assert record.key is None
    assert len(record.ce_id) == 32


def test_odd_json_still_makes_a_record() -> None:
    raw = b'{"messageId": "\\ud800", "chatId": "\\udfff", "n": 1e308, "b": 1' + b"0" * 30 + b"}"
    record = build_record("message", parse_body(raw), tenant=None, received=NOW)
    assert record.topic == "raw.yuju.message.v1"
    assert len(record.ce_id) == 32  # an unencodable messageId falls back to the body hash
    assert record.key == "\udfff".encode("utf-8", "surrogatepass")
    assert json.loads(record.value)["b"] == int("1" + "0" * 30)


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"messageId": "m", "chatId": "c", "botId": "b"}},
        {"messageId": "m", "chatId": "c"},
        {"data": {"messageId": "m", "chatId": ""}, "botId": "x"},
        {"data": {"messageId": 12, "chatId": "c"}},
        {"data": {"messageId": "m", " chatId": "c2", "chatId": "c"}},
        {"data": {"messageId": "m", "chatId ": "c"}},
        {"messageId": "m", "imBotId": "b", "imRoomId": "r"},
    ],
)
def test_message_fast_path_agrees_with_the_model(body: dict[str, object]) -> None:
    from schemas.yuju import YujuMessage

    model = YujuMessage.model_validate(body)
    record = build_record("message", body, tenant=None, received=NOW)
    assert record.key == model.conversation_id.encode()
    assert record.ce_id == model.message_id


_KEYS = st.sampled_from(
    ["token", " token", "token\t", "tokens", "data", " data", "metadata", "messageId", "a", "x"]
)
_LEAVES = st.one_of(st.none(), st.integers(), st.text(max_size=5))


@given(
    st.dictionaries(
        _KEYS,
        st.one_of(_LEAVES, st.dictionaries(_KEYS, _LEAVES, max_size=6)),
        max_size=6,
    )
)
def test_split_token_fast_path_agrees_with_the_general_walk(body: dict[str, object]) -> None:
    from ingress.routing import _split_token_any

    assert split_token(body) == _split_token_any(body)
