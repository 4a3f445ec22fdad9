"""The normalizer's mapping, without Kafka: every kind, both formats, the tab key, timestamps,
unknown types, missing optional fields, sender role / channel, deduplication."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from processors.engine.testing import LocalRun, input_record
from processors.normalizer import KINDS, PROCESSOR, declare
from runtime.settings import ProcessorSettings
from schemas.chat import ChatMessage
from tests.support.samples import SAMPLES

TOPIC = "raw.yuju.message.v1"
CE_TIME = "2026-11-22T08:00:00.123Z"
RECEIVED = datetime(2026, 11, 22, 8, 0, 0, 123000, tzinfo=UTC)


def body(wrapped: bool = True, **fields: Any) -> bytes:
    data: dict[str, Any] = {
        "messageId": "m1",
        "chatId": "chat-1",
        "contactId": "c1",
        "contactName": "小王",
        "botId": "b1",
        "type": 7,
        "payload": {"text": "你好"},
        "timestamp": 1763798400000,
        "isSelf": False,
    }
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not ...}
    return orjson.dumps({"data": data} if wrapped else data)


def run(value: bytes, run_: LocalRun | None = None, **headers: str) -> list[ChatMessage]:
    local = run_ or LocalRun(PROCESSOR)
    hdrs = {"ce_time": CE_TIME, "tenant": "acme", **headers}
    outs = local.feed(input_record(TOPIC, value, headers=hdrs))
    assert all(o.topic == "chat.message.v2" for o in outs)
    return [as_chat(o.value) for o in outs]


def as_chat(value: object) -> ChatMessage:
    """The output value as a `ChatMessage`: the fast path writes JSON bytes, validated here
    against the strict model; the model path a `ChatMessage`."""
    if isinstance(value, bytes):
        return ChatMessage.model_validate_json(value)
    assert isinstance(value, ChatMessage)
    return value


def one(value: bytes, **headers: str) -> ChatMessage:
    (msg,) = run(value, None, **headers)
    return msg


def test_text_message_fields() -> None:
    msg = one(body(mentionSelf=True, payload={"text": "@bot 你好", "mention": ["bot-1", "c9"]}))
    assert msg.message_id == "m1"
    assert msg.conversation_id == "chat-1"
    assert msg.tenant == "acme"
    assert msg.platform == "yuju"
    assert (msg.bot_id, msg.contact_id, msg.contact_name) == ("b1", "c1", "小王")
    assert msg.room_id is None
    assert (msg.direction, msg.sender_role, msg.channel) == ("inbound", "customer", "ai")
    assert (msg.kind, msg.type_code, msg.text) == ("text", 7, "@bot 你好")
    assert msg.mentions == ["bot-1", "c9"]
    assert msg.mentions_bot is True
    assert msg.attachment is None
    assert msg.sent_at == datetime(2025, 11, 22, 8, 0, tzinfo=UTC)
    assert msg.received_at == RECEIVED
    assert msg.payload == {"text": "@bot 你好", "mention": ["bot-1", "c9"]}


def test_output_record_is_keyed_by_tenant_and_conversation_with_cloudevents_headers() -> None:
    (out,) = LocalRun(PROCESSOR).feed(
        input_record(TOPIC, body(), headers={"ce_time": CE_TIME, "tenant": "acme"})
    )
    assert out.key == "acme|chat-1"  # scoped by tenant
    headers = dict(out.headers)
    assert headers["ce_id"] == b"acme|m1"  # unique across tenants
    assert headers["ce_type"] == b"wecomstream.chat.message.v2"
    assert headers["ce_time"] == CE_TIME.encode()
    assert headers["tenant"] == b"acme"


def test_doc_example_content_key_is_the_text() -> None:
    assert one(body(payload={"content": "hello"})).text == "hello"


@pytest.mark.parametrize(("code", "kind"), sorted(KINDS.items()))
def test_every_documented_type_has_its_kind(code: int, kind: str) -> None:
    msg = one(body(type=code, payload={"x": 1}))
    assert (msg.kind, msg.type_code) == (kind, code)


@pytest.mark.parametrize("code", [17, 10002, 424242, -1])
def test_unknown_types_are_kept_with_raw_payload(code: int) -> None:
    payload = {"weird": {"nested": [1, 2]}, "text": "t"}
    msg = one(body(type=code, payload=payload))
    assert (msg.kind, msg.type_code) == ("unknown", code)
    assert msg.payload == payload


def test_type_as_string_and_absent() -> None:
    assert one(body(type="6", payload={"imageUrl": "u"})).kind == "image"
    msg = one(body(type=...))
    assert (msg.kind, msg.type_code) == ("unknown", None)


@pytest.mark.parametrize(
    ("kind_code", "payload", "expected"),
    [
        (
            1,
            {"name": "a.pdf", "fileUrl": "https://f", "size": 12},
            {"name": "a.pdf", "url": "https://f", "size": 12},
        ),
        (
            1,
            {"name": "b.pdf", "url": "https://g", "size": "34"},
            {"name": "b.pdf", "url": "https://g", "size": 34},
        ),
        (
            2,
            {"voiceUrl": "https://v", "duration": 3, "text": "语音"},
            {"url": "https://v", "duration": 3.0},
        ),
        (3, {"avatar": "a", "name": "Card", "wxid": "w1"}, {"name": "Card", "contact_id": "w1"}),
        (5, {"imageUrl": "https://e"}, {"url": "https://e"}),
        (
            6,
            {"imageUrl": "https://i", "width": 10, "height": 20, "size": 5},
            {"url": "https://i", "width": 10, "height": 20, "size": 5},
        ),
        (
            8,
            {"name": "P", "address": "A", "latitude": "31.2", "longitude": "121.5"},
            {"name": "P", "address": "A", "latitude": 31.2, "longitude": 121.5},
        ),
        (
            9,
            {"appId": "wx1", "username": "u", "title": "T", "thumbUrl": "th", "pagePath": "p"},
            {"app_id": "wx1", "title": "T", "thumbnail_url": "th", "page_path": "p"},
        ),
        (
            12,
            {"title": "T", "url": "https://l", "description": "D", "thumbnailUrl": "th"},
            {"title": "T", "url": "https://l", "description": "D", "thumbnail_url": "th"},
        ),
        (
            12,
            {"sourceUrl": "https://s", "title": "T", "summary": "S", "imageUrl": "https://im"},
            {"url": "https://s", "title": "T", "description": "S", "thumbnail_url": "https://im"},
        ),
        (
            13,
            {"videoUrl": "https://vid", "duration": 9, "thumbnailUrl": "th"},
            {"url": "https://vid", "duration": 9.0, "thumbnail_url": "th"},
        ),
    ],
)
def test_attachments(kind_code: int, payload: dict[str, Any], expected: dict[str, Any]) -> None:
    msg = one(body(type=kind_code, payload=payload))
    assert msg.attachment is not None
    assert msg.attachment.model_dump(exclude_none=True) == expected
    assert msg.payload == payload


def test_voice_text_is_speech_to_text_and_system_content() -> None:
    assert one(body(type=2, payload={"voiceUrl": "v", "text": "语音"})).text == "语音"
    assert one(body(type=10001, payload={"type": 1, "content": "系统"})).text == "系统"
    assert one(body(type=6, payload={"imageUrl": "u", "text": "x"})).text is None


def test_enterprise_v2_flat_body() -> None:
    msg = one(
        body(
            wrapped=False,
            type=...,
            contactId=...,
            botId=...,
            messageType=7,
            imContactId="ic",
            imRoomId="room-9",
            imBotId="ib",
            botUserId="bu",
            orgId="o",
            roomTopic="群",
        )
    )
    assert (msg.kind, msg.contact_id, msg.room_id, msg.bot_id) == ("text", "ic", "room-9", "ib")
    assert msg.room_topic == "群"


def test_tab_key_and_sample_body() -> None:
    sample = (SAMPLES / "yuju-message.json").read_bytes()
    assert b"roomWecomChatId\\t" in sample
    msg = one(sample)
    # the doc sample: "string" placeholders everywhere, type 0, timestamp "string"
    assert (msg.kind, msg.type_code) == ("unknown", 0)
    assert msg.sent_at == msg.received_at == RECEIVED
    assert (msg.direction, msg.sender_role, msg.channel) == ("outbound", "agent", "human")


@pytest.mark.parametrize(
    "timestamp",
    [
        1763798400,
        1763798400000,
        "1763798400",
        "1763798400000",
        1763798400.0,
        "2025-11-22T08:00:00Z",
    ],
)
def test_timestamps_in_seconds_milliseconds_and_strings(timestamp: Any) -> None:
    assert one(body(timestamp=timestamp)).sent_at == datetime(2025, 11, 22, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("timestamp", [..., None, "", "string", -5])
def test_unusable_timestamp_falls_back_to_received_at(timestamp: Any) -> None:
    assert one(body(timestamp=timestamp)).sent_at == RECEIVED


def test_received_at_falls_back_to_record_time_without_ce_time() -> None:
    local = LocalRun(PROCESSOR)
    (out,) = local.feed(input_record(TOPIC, body(), timestamp_ms=1_700_000_000_500))
    chat = as_chat(out.value)
    assert chat.received_at == datetime.fromtimestamp(1_700_000_000.5, tz=UTC)
    assert chat.tenant == "default"  # no tenant header: the default tenant
    assert dict(out.headers)["tenant"] == b"default"


def test_missing_optional_fields() -> None:
    raw = orjson.dumps({"data": {"messageId": "only"}})
    msg = one(raw)
    assert msg.message_id == "only"
    assert msg.conversation_id == ":"
    assert (msg.bot_id, msg.contact_id, msg.room_id, msg.text, msg.source) == (None,) * 5
    assert (msg.kind, msg.mentions, msg.mentions_bot, msg.payload) == ("unknown", [], False, None)
    assert (msg.direction, msg.sender_role, msg.channel) == ("inbound", "customer", "ai")


def test_room_message_and_mentions_as_objects() -> None:
    msg = one(
        body(
            roomId="r1", roomTopic="T", payload={"text": "hi", "mention": [{"imContactId": "x"}, 3]}
        )
    )
    assert (msg.room_id, msg.room_topic, msg.mentions) == ("r1", "T", ["x", "3"])


@pytest.mark.parametrize(
    ("fields", "role", "channel"),
    [
        ({"isSelf": True, "source": 1}, "agent", "human"),
        ({"isSelf": True, "source": 0}, "agent", "human"),
        ({"isSelf": True, "source": 3, "sendBy": "console-user"}, "agent", "human"),
        ({"isSelf": True, "source": 3}, "bot", "ai"),
        ({"isSelf": True, "source": 15}, "bot", "ai"),
        ({"isSelf": True, "source": 7}, "bot", "ai"),
        ({"isSelf": True, "source": 99}, "bot", "ai"),
        ({"isSelf": True, "source": ...}, "bot", "ai"),
        ({"isSelf": False, "coworker": True}, "agent", "human"),
        ({"isSelf": False}, "customer", "ai"),
        ({"isSelf": ...}, "customer", "ai"),
    ],
)
def test_sender_role_and_channel(fields: dict[str, Any], role: str, channel: str) -> None:
    msg = one(body(**fields))
    assert (msg.sender_role, msg.channel) == (role, channel)
    business_side = fields.get("isSelf") is True or fields.get("coworker") is True
    assert msg.direction == ("outbound" if business_side else "inbound")


def test_customer_channel_follows_the_conversation_mode() -> None:
    local = LocalRun(PROCESSOR)
    seq = [
        (body(messageId="a"), "ai"),
        (body(messageId="b", isSelf=True, source=15), "ai"),
        (body(messageId="c"), "ai"),
        (body(messageId="d", isSelf=True, source=1), "human"),
        (body(messageId="e"), "human"),
        (body(messageId="f", chatId="other"), "ai"),
        (body(messageId="g", isSelf=True, source=3), "ai"),
        (body(messageId="h"), "ai"),
    ]
    for raw, channel in seq:
        (msg,) = run(raw, local)
        assert msg.channel == channel, msg.message_id


def test_duplicates_are_dropped_within_retention_and_kept_after() -> None:
    local = LocalRun(declare(ProcessorSettings(normalizer_dedup_retention_ms=60_000)))
    t0 = 1_700_000_000_000

    def feed(message_id: str, ts: int) -> int:
        rec = input_record(TOPIC, body(messageId=message_id), timestamp_ms=ts)
        return len(local.feed(rec))

    assert feed("m1", t0) == 1
    assert feed("m1", t0 + 1000) == 0
    assert feed("m2", t0 + 2000) == 1
    assert feed("m3", t0 + 120_000) == 1
    assert local.expire() == 2  # m1 and m2 are older than 60 s of stream time
    assert feed("m1", t0 + 121_000) == 1  # remembered no longer: treated as new
    assert feed("m3", t0 + 122_000) == 0


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[]", b'{"data": {"chatId": "no message id"}}', b'"str"', None],
)
def test_malformed_records_raise_and_leave_no_state(raw: bytes | None) -> None:
    local = LocalRun(PROCESSOR)
    with pytest.raises((ValidationError, ValueError)):
        local.feed(input_record(TOPIC, raw))
    assert all(len(list(s.items())) == 0 for s in local.stores.values())


def test_token_never_reaches_the_output() -> None:
    (out,) = LocalRun(PROCESSOR).feed(input_record(TOPIC, body(token="SECRET-TOKEN")))
    assert b"SECRET-TOKEN" not in as_chat(out.value).model_dump_json().encode()
    assert isinstance(out.value, bytes)
    assert b"SECRET-TOKEN" not in out.value
