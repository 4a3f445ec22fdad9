"""Every sample body (`tests/samples/`, a copy of ../shared/samples/) parses with its model,
and the platforms' quirks do too."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.chat_record import ChatRecordRequest, ChatRecordResponse
from schemas.insight import InsightFeedback
from schemas.yuju import RoomJoin, RoomLeave, RoomTopic, YujuMessage, classify_room
from tests.support.samples import SAMPLES, SHARED_SAMPLES


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def test_every_sample_file_is_covered() -> None:
    covered = {
        "insight-feedback.json",
        "insight-feedback.seed-literal.txt",
        "yuju-chat-record-request.json",
        "yuju-chat-record-response.json",
        "yuju-message.json",
        "yuju-room-leave.json",
    }
    assert {p.name for p in Path(SAMPLES).iterdir()} == covered


def test_the_copy_equals_the_shared_samples() -> None:
    """`tests/samples/` is the shared samples, byte for byte (checked where they are beside
    the clone: the project's working tree; a lone clone has only the copy)."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip("../shared/samples is not beside this clone")
    shared = {p.name: p.read_bytes() for p in SHARED_SAMPLES.iterdir()}
    assert {p.name: p.read_bytes() for p in SAMPLES.iterdir()} == shared


def test_message_sample_group_level_format() -> None:
    msg = YujuMessage.model_validate(load("yuju-message.json"))
    assert msg.message_id == "string"
    assert msg.chat_id == "string"
    assert msg.type == 0
    assert msg.payload == {"content": "string"}
    assert msg.is_self is True
    assert msg.mention_self is True
    assert msg.coworker is True
    # The doc's key has a trailing tab: "roomWecomChatId\t".
    assert msg.room_wecom_chat_id == "string"
    # The doc's example timestamp is the literal "string": unusable, so None (receive time).
    assert msg.timestamp is None


def test_token_is_parsed_but_never_serialized() -> None:
    body = load("yuju-message.json")
    body["data"]["token"] = "SECRET-TOKEN-123"
    msg = YujuMessage.model_validate(body)
    assert msg.token is not None
    assert msg.token.get_secret_value() == "SECRET-TOKEN-123"
    assert "SECRET-TOKEN-123" not in msg.model_dump_json()
    assert "SECRET-TOKEN-123" not in repr(msg)


def test_room_leave_sample() -> None:
    body = load("yuju-room-leave.json")
    assert classify_room(body) == "leave"
    event = RoomLeave.model_validate(body)
    assert event.im_room_id == "string"
    assert [m.im_contact_id for m in event.members] == ["string"]
    member = event.members[0]
    assert member.is_self is True
    assert member.is_friend is True
    assert member.contact_type == 0
    assert event.bot_info is not None
    assert event.bot_info.im_bot_id == "string"


def test_insight_feedback_sample() -> None:
    fb = InsightFeedback.model_validate(load("insight-feedback.json"))
    assert fb.feedback_status == "none"
    assert fb.exec_id == "22b35345-f433-4f2a-b91f-7c71b7fd931b"
    assert fb.output_actions is not None
    assert fb.output_actions[0].node_id == "0ecd34f2-bdfa-43bb-a9ab-8acfcaf67528"
    assert fb.feedback is None
    assert fb.message_id is None
    assert fb.room_id is None
    assert fb.trigger_event is not None
    assert fb.trigger_event.receive_text_message == {"text": "hi", "role": "user"}


def _js_literal_to_json(text: str) -> Any:
    """The doc prints a JavaScript object literal; turn its first object into JSON."""
    depth, end = 0, 0
    for i, ch in enumerate(text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0 and ch == "}":
            end = i + 1
            break
    literal = text[:end]
    literal = re.sub(r"^\s*\w+: undefined,?\n", "", literal, flags=re.M)  # undefined = absent
    literal = re.sub(r"^(\s*)(\w+):", r'\1"\2":', literal, flags=re.M)  # quote keys
    literal = re.sub(r",(\s*[}\]])", r"\1", literal)  # trailing commas
    return json.loads(literal)


def test_seed_literal_is_the_json_sample_with_undefined_fields_absent() -> None:
    text = (SAMPLES / "insight-feedback.seed-literal.txt").read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # not JSON on the wire: the ingress answers 400 to it
    as_json = _js_literal_to_json(text)
    assert as_json == load("insight-feedback.json")
    assert InsightFeedback.model_validate(as_json) == InsightFeedback.model_validate(
        load("insight-feedback.json")
    )


def test_chat_record_api_samples() -> None:
    request = ChatRecordRequest.model_validate(load("yuju-chat-record-request.json"))
    assert request.customer_id == "57a286a608894aa7b26a9e589f4d3333"
    assert request.days == "30"
    response = ChatRecordResponse.model_validate(load("yuju-chat-record-response.json"))
    assert response.code == 2000
    chat = response.data[0]
    assert chat.chat_id == "5c82cf0c-8db0-4bcd-94de-dece5c011f8b-258262"
    assert [(m.channel, m.sender_role) for m in chat.messages[:2]] == [
        ("ai", "customer"),
        ("human", "agent"),
    ]


# ---------------------------------------------------------------- quirks


def flat_v2_message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messageId": "m1",
        "chatId": "c1",
        "messageType": 7,
        "imContactId": "contact-1",
        "imRoomId": "room-1",
        "imBotId": "bot-1",
        "botUserId": "bot-weixin",
        "orgId": "org-1",
        "payload": {"text": "hello"},
        "timestamp": 1_700_000_000_000,
    }
    body.update(overrides)
    return body


def test_enterprise_v2_flat_body_maps_onto_group_names() -> None:
    msg = YujuMessage.model_validate(flat_v2_message())
    assert (msg.type, msg.contact_id, msg.room_id, msg.bot_id) == (
        7,
        "contact-1",
        "room-1",
        "bot-1",
    )
    assert (msg.bot_weixin, msg.org_id) == ("bot-weixin", "org-1")
    assert msg.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        1_700_000_000,
        1_700_000_000_000,
        "1700000000",
        "1700000000000",
        1_700_000_000_000_000,
        "2023-11-14T22:13:20Z",
        1_700_000_000.0,
    ],
)
def test_timestamps_in_seconds_ms_us_strings_and_iso(raw: Any) -> None:
    msg = YujuMessage.model_validate(flat_v2_message(timestamp=raw))
    assert msg.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["", "string", None, -5, 0, True, {"x": 1}, "NaN"])
def test_unusable_timestamps_become_none(raw: Any) -> None:
    assert YujuMessage.model_validate(flat_v2_message(timestamp=raw)).timestamp is None


def test_type_as_string_and_unknown_values_are_kept() -> None:
    assert YujuMessage.model_validate(flat_v2_message(messageType="7")).type == 7
    assert YujuMessage.model_validate(flat_v2_message(messageType=10002)).type == 10002
    assert YujuMessage.model_validate(flat_v2_message(messageType="weird")).type is None


def test_unknown_fields_are_kept_and_junk_optionals_become_none() -> None:
    msg = YujuMessage.model_validate(
        flat_v2_message(newField={"a": 1}, isSelf={"not": "a bool"}, contactName=["x"])
    )
    assert msg.model_extra is not None
    assert msg.model_extra["newField"] == {"a": 1}
    assert msg.is_self is None
    assert msg.contact_name is None


def test_absent_optional_fields() -> None:
    msg = YujuMessage.model_validate({"messageId": "m1"})
    assert msg.chat_id is None
    assert msg.type is None
    assert msg.payload is None
    assert msg.conversation_id == ":"  # no chatId, bot, room or contact: still a key


def test_conversation_id_falls_back_to_bot_and_room_or_contact() -> None:
    body = flat_v2_message()
    del body["chatId"]
    assert YujuMessage.model_validate(body).conversation_id == "bot-1:room-1"


def test_numeric_ids_are_accepted_as_strings() -> None:
    assert YujuMessage.model_validate({"messageId": 12345}).message_id == "12345"


def test_left_members_plural_and_join_and_topic_bodies() -> None:
    leave = load("yuju-room-leave.json")
    leave["leftMembers"] = leave.pop("leftMember")
    assert classify_room(leave) == "leave"
    assert len(RoomLeave.model_validate(leave).members) == 1

    for key in ("joinMember", "joinMembers", "members"):
        join = load("yuju-room-leave.json")
        join[key] = join.pop("leftMember")
        join["inviterImContactId"] = "inviter"
        assert classify_room(join) == "join"
        event = RoomJoin.model_validate(join)
        assert len(event.members) == 1
        assert event.model_extra is not None
        assert event.model_extra["inviterImContactId"]

    topic = load("yuju-room-leave.json")
    del topic["leftMember"]
    topic["topic"] = "new name"
    assert classify_room(topic) == "topic"
    assert RoomTopic.model_validate(topic).topic == "new name"


def test_whitespace_around_keys_is_stripped_everywhere() -> None:
    body = {" imRoomId ": "r1", "leftMember\t": [{"imContactId\t": "c1"}]}
    assert classify_room(body) == "leave"
    event = RoomLeave.model_validate(body)
    assert event.im_room_id == "r1"
    assert event.members[0].im_contact_id == "c1"
