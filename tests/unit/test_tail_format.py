"""tail's pure parts: the terminal line of each record type, the width cut, the JSON line."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from rich.cells import cell_len
from rich.console import Console

from schemas.chat import ChatMessage
from schemas.feedback import FeedbackEvent, FeedbackStats
from schemas.room import MemberChange, RoomMembership
from wecom_stream.tail import ConsoleOutput, RecordView, clean, format_line, record_line, summary


@dataclass
class FakeRecord:
    """The attributes tail reads from an aiokafka ConsumerRecord."""

    value: bytes | None
    topic: str = "t.chat.message.v2"
    partition: int = 2
    offset: int = 41
    timestamp: int | None = 1_796_112_000_000  # 2026-12-01T08:00:00Z
    key: bytes | None = b"k1"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def view(value: Any, **kwargs: Any) -> RecordView:
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return RecordView.of(FakeRecord(raw, **kwargs))


def line(value: Any, topic: str, width: int = 200, **kwargs: Any) -> str:
    return format_line(view(value, **kwargs), topic, width).plain


CHAT = {
    "message_id": "m1",
    "conversation_id": "conv-9",
    "sender_role": "customer",
    "kind": "text",
    "text": "你好\nI need\thelp",
    "attachment": None,
}


def test_chat_message_line_has_conversation_role_kind_and_one_line_text() -> None:
    out = line(CHAT, "chat.message.v2")
    assert out.startswith("12-01 08:00:00Z p2@41 k1 ")
    assert "conversation=conv-9 sender_role=customer kind=text  你好 I need help" in out
    assert "\n" not in out


def test_chat_message_without_text_shows_the_attachment() -> None:
    value = {**CHAT, "kind": "file", "text": None, "attachment": {"name": "a.pdf"}}
    assert line(value, "chat.message.v2").endswith("kind=file  a.pdf")


def test_room_membership_line() -> None:
    value = {"room_id": "r1", "member_count": 12, "bot_in_room": False, "members": []}
    assert line(value, "room.membership.v2").endswith("room=r1 member_count=12 bot_in_room=false")


def test_member_change_line() -> None:
    value = {"room_id": "r1", "contact_id": "c7", "change": "left", "member_count": 3}
    assert line(value, "room.member-change.v2").endswith("room=r1 contact=c7 change=left")


def test_feedback_event_line_shows_the_status_change() -> None:
    value = {"bot_id": "b1", "exec_id": "e1", "status": "thumb-down", "previous_status": "none"}
    assert line(value, "feedback.event.v2").endswith("bot=b1 status=none→thumb-down exec=e1")
    first = {**value, "previous_status": None}
    assert "status=thumb-down exec=e1" in line(first, "feedback.event.v2")


def test_feedback_stats_line_shows_window_and_counts() -> None:
    value = {
        "bot_id": "b1",
        "node_id": None,
        "window": "hour",
        "window_start": "2026-12-01T08:00:00Z",
        "thumbs_up": 3,
        "thumbs_down": 1,
        "neutral": 2,
        "comments": 1,
    }
    assert line(value, "feedback.stats.v2").endswith(
        "bot=b1 window=hour@2026-12-01T08:00:00Z up=3 down=1 neutral=2 comments=1"
    )


def test_raw_line_has_ce_headers_tenant_and_body_summary() -> None:
    headers = [("ce_type", b"wecomstream.raw.yuju.message.v1"), ("ce_id", b"id-1")]
    headers.append(("tenant", b"acme"))
    body = {"data": {"chatId": "c1", "type": 7, "payload": {"text": "hi\nthere"}, "at": [1]}}
    out = line(body, "raw.yuju.message.v1", headers=headers)
    assert "ce_type=wecomstream.raw.yuju.message.v1 ce_id=id-1 tenant=acme" in out
    assert out.endswith("chatId=c1 type=7 payload.text=hi there at=[1]")


def test_dlq_line_has_the_error_headers() -> None:
    headers = [
        ("dlq_error_type", b"ValidationError"),
        ("dlq_error", b"field required:\nroom_id"),
        ("dlq_source_topic", b"t.raw.yuju.room-join.v1"),
    ]
    out = line({"any": 1}, "dlq.membership.v1", headers=headers)
    assert out.endswith(
        "error_type=ValidationError source=t.raw.yuju.room-join.v1 error=field required: room_id"
    )


@pytest.mark.parametrize(
    ("value", "topic", "expected"),
    [
        (b"not json", "chat.message.v2", "  not json"),
        ({"unexpected": True}, "chat.message.v2", '  {"unexpected":true}'),
        ([1, 2], "room.membership.v2", "  [1,2]"),
        ({"x": "y"}, "some.other.v1", '  {"x":"y"}'),
        (None, "room.membership.v2", "  (no value: a tombstone)"),
        (b"\xff\xfe", "feedback.stats.v2", "  \ufffd\ufffd"),
    ],
)
def test_a_value_of_another_shape_falls_back_to_compact(
    value: Any, topic: str, expected: str
) -> None:
    assert line(value, topic).endswith(expected)


def test_time_falls_back_to_ce_time_then_dash() -> None:
    ce = [("ce_time", b"2026-12-01T09:30:00.000Z")]
    assert line(CHAT, "chat.message.v2", timestamp=None, headers=ce).startswith("12-01 09:30:00Z")
    bad = [("ce_time", b"yesterday")]
    assert line(CHAT, "chat.message.v2", timestamp=-1, headers=bad).startswith("- p2@41")


@pytest.mark.parametrize("width", [20, 47, 80])
def test_a_line_is_cut_to_the_width_counting_wide_characters(width: int) -> None:
    long = {**CHAT, "text": "客户的消息很长" * 30}
    text = format_line(view(long), "chat.message.v2", width)
    assert cell_len(text.plain) <= width
    assert text.plain.endswith("…")


def test_control_characters_cannot_reach_the_terminal() -> None:
    assert clean("a\x1b[31mred\x07\r\nb\x9b") == "a[31mred b"


def test_summary_shortens_long_strings() -> None:
    assert summary({"a": "x" * 50}, limit=10) == "a=" + "x" * 10 + "…"


def test_console_output_prints_one_coloured_line_per_record() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, color_system="standard")
    out = ConsoleOutput("chat.message.v2", console)
    out.write(view({**CHAT, "text": "line one\nline two " * 20}))
    out.write(view({"room_id": "r1"}, headers=[("dlq_error", b"boom")]))
    out.flush()
    printed = screen.getvalue()
    lines = re.sub(r"\x1b\[[0-9;]*m", "", printed).splitlines()
    assert len(lines) == 2
    assert all(cell_len(text) <= 80 for text in lines)
    assert "\x1b[1;32mk1" in printed  # an output topic's key in bold green


def test_a_dlq_topic_is_red_and_a_raw_topic_cyan() -> None:
    styles = {
        topic: format_line(view({}), topic, 80).spans[2].style
        for topic in ("dlq.normalizer.v1", "raw.yuju.message.v1")
    }
    assert styles == {"dlq.normalizer.v1": "bold red", "raw.yuju.message.v1": "bold cyan"}


def test_record_line_keeps_the_json_format() -> None:
    record = FakeRecord(b'{"a": 1}', headers=[("ce_id", b"id-1")])
    assert orjson.loads(record_line(record)) == {
        "topic": "t.chat.message.v2",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_796_112_000_000,
        "key": "k1",
        "headers": {"ce_id": "id-1"},
        "value": {"a": 1},
    }
    assert orjson.loads(record_line(FakeRecord(b"not json", key=None)))["value"] == "not json"


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (ChatMessage, {"conversation_id", "sender_role", "kind", "text", "attachment"}),
        (RoomMembership, {"room_id", "member_count", "bot_in_room"}),
        (MemberChange, {"room_id", "contact_id", "change"}),
        (FeedbackEvent, {"bot_id", "exec_id", "status", "previous_status"}),
        (FeedbackStats, {"bot_id", "node_id", "window", "window_start", "thumbs_up"}),
    ],
)
def test_the_fields_tail_shows_exist_in_the_schemas(model: Any, fields: set[str]) -> None:
    assert fields <= set(model.model_fields)
