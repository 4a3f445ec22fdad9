"""Chat-record entries → ChatMessages (the seed's example, prefixes, unknown values), their
stable ids, the request body, the window and customer options, and the pacer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from processors._chat_record_mapping import chat_record_message, split_prefix
from runtime.errors import ConfigError
from schemas.chat import ChatMessage
from schemas.chat_record import ChatRecordEntry, QueryWindow, entry_id
from tests.support.samples import SAMPLES
from wecom_stream.backfill.api import Pacer, request_body
from wecom_stream.backfill.records import customer_ids, query_window, records_of

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SEED_CHAT: dict[str, Any] = orjson.loads((SAMPLES / "yuju-chat-record-response.json").read_bytes())[
    "Data"
][0]  # the API page's example: 7 messages, AI then human turns
WINDOW = QueryWindow(start_time="2026-11-01 00:00:00", end_time="2026-12-01 00:00:00")


def entry(position: int, message: dict[str, Any], window: QueryWindow = WINDOW) -> ChatRecordEntry:
    return ChatRecordEntry(
        customer_id="cust-1", chat_id="chat-1", position=position, window=window, message=message
    )


def test_the_seed_example_maps_to_channel_role_direction_and_text_without_prefix() -> None:
    records = records_of("cust-1", [SEED_CHAT], WINDOW, fetched_at=NOW, tenant="acme")
    out = [
        chat_record_message(
            ChatRecordEntry.model_validate_json(r.value), received_at=NOW, tenant="acme"
        )
        for r in records
    ]
    got = [(m.channel, m.sender_role, m.direction, m.text) for m in out]
    assert got == [
        ("ai", "customer", "inbound", "你好"),
        ("human", "agent", "outbound", "1777"),
        ("human", "customer", "inbound", "777"),
        ("human", "agent", "outbound", "000"),
        ("human", "customer", "inbound", "456"),
        ("human", "agent", "outbound", "666"),
        ("human", "customer", "inbound", "123"),
    ]
    for position, msg in enumerate(out):
        assert msg.origin == "chat_record"
        assert msg.conversation_id == SEED_CHAT["chat_id"]
        assert msg.contact_id == "cust-1"
        assert msg.tenant == "acme"
        assert msg.kind == "text"
        assert msg.payload == SEED_CHAT["messages"][position]  # raw content kept
        assert msg.message_id.startswith("cr-")
        assert msg.sent_at == msg.received_at == NOW
        ChatMessage.model_validate_json(msg.model_dump_json())  # the strict contract holds
    assert len({m.message_id for m in out}) == len(out)


def test_an_agent_on_the_ai_channel_is_the_bot() -> None:
    msg = chat_record_message(
        entry(0, {"content": "您好，我是助手", "message_type": "AI对话", "sender_type": "客服"}),
        received_at=NOW,
        tenant="default",
    )
    assert (msg.channel, msg.sender_role, msg.direction) == ("ai", "bot", "outbound")


@pytest.mark.parametrize(
    ("content", "sender_type", "text"),
    [
        ("人工回复：全角冒号", "客服", "全角冒号"),  # full-width colon
        ("人工回复:无空格", "客服", "无空格"),
        ("人工回复: 客户打的", "用户", "人工回复: 客户打的"),  # not the sender's prefix: kept
        ("访客发送: 坐席打的", "客服", "访客发送: 坐席打的"),
        ("没有前缀", "客服", "没有前缀"),
        ("", "用户", ""),
    ],
)
def test_only_the_senders_own_display_prefix_is_removed(
    content: str, sender_type: str, text: str
) -> None:
    msg = chat_record_message(
        entry(0, {"content": content, "message_type": "人工对话", "sender_type": sender_type}),
        received_at=NOW,
        tenant="default",
    )
    assert msg.text == text
    assert msg.payload["content"] == content


def test_undocumented_values_are_not_errors() -> None:
    by_prefix = chat_record_message(
        entry(0, {"content": "人工回复: hi", "message_type": "视频对话", "sender_type": "?"}),
        received_at=NOW,
        tenant="default",
    )
    assert (by_prefix.channel, by_prefix.sender_role, by_prefix.text) == ("human", "agent", "hi")
    bare = chat_record_message(entry(0, {"content": 12}), received_at=NOW, tenant="default")
    assert (bare.channel, bare.sender_role, bare.text) == ("ai", "unknown", None)
    assert split_prefix("访客发送: x") == ("访客发送", "x")


@pytest.mark.parametrize("sender_type", ["机器人", "", None])
def test_an_undocumented_sender_type_is_not_silently_a_customer(sender_type: object) -> None:
    """Issue 32: an undocumented (or absent) `sender_type` used to become `customer`; now it
    is `unknown` unless the content's display prefix tells (fails before the fix)."""
    message: dict[str, object] = {"content": "你好", "message_type": "AI对话"}
    if sender_type is not None:
        message["sender_type"] = sender_type
    msg = chat_record_message(entry(0, message), received_at=NOW, tenant="default")
    assert (msg.sender_role, msg.direction, msg.text) == ("unknown", "inbound", "你好")
    assert msg.payload == message  # the raw value is kept for whoever knows better
    told = chat_record_message(
        entry(0, {**message, "content": "访客发送: 你好"}), received_at=NOW, tenant="default"
    )
    assert told.sender_role == "customer"


def test_ids_are_stable_for_the_same_window_and_differ_otherwise() -> None:
    message = SEED_CHAT["messages"][1]
    same = entry_id(entry(1, dict(message)))
    assert same == entry_id(entry(1, dict(message)))
    assert same != entry_id(entry(2, dict(message)))  # another position
    assert same != entry_id(entry(1, {**message, "content": "人工回复: changed"}))
    assert same != entry_id(entry(1, dict(message), QueryWindow(days="30")))
    other_chat = ChatRecordEntry(
        customer_id="cust-1", chat_id="chat-2", position=1, window=WINDOW, message=message
    )
    assert same != entry_id(other_chat)


def test_records_are_keyed_by_chat_in_position_order_with_stable_ce_ids() -> None:
    first = records_of("cust-1", [SEED_CHAT], WINDOW, fetched_at=NOW, tenant="acme")
    again = records_of("cust-1", [SEED_CHAT], WINDOW, fetched_at=datetime.now(UTC), tenant="acme")
    assert [r.key for r in first] == [SEED_CHAT["chat_id"].encode()] * 7
    values = [orjson.loads(r.value) for r in first]
    assert [v["position"] for v in values] == list(range(7))
    assert values[0]["window"] == WINDOW.model_dump()
    headers = [dict(r.headers) for r in first]
    assert [h["ce_id"] for h in headers] == [dict(r.headers)["ce_id"] for r in again]
    assert headers[0]["ce_type"] == b"wecomstream.raw.yuju.chat-record.v1"
    assert headers[0]["tenant"] == b"acme"


def test_request_body_is_the_documented_shape() -> None:
    sample = orjson.loads((SAMPLES / "yuju-chat-record-request.json").read_bytes())
    body = request_body("57a286a608894aa7b26a9e589f4d3333", QueryWindow(days="30"))
    expected = {
        "customer_id": "57a286a608894aa7b26a9e589f4d3333",
        "days": "30",
        "start_time": "",
        "end_time": "",
        "chat_source": [],
        "chat_robot": [],
        "seat_member": [],
    }
    assert body == expected
    assert list(body) == list(expected)
    assert body == sample  # the API page's own example


def test_window_options() -> None:
    assert query_window(None, None, None) == QueryWindow(days="30")
    assert query_window(7, None, None) == QueryWindow(days="7")
    fixed = query_window(None, "2026-11-01", "2026-11-30 12:00")
    assert fixed == QueryWindow(start_time="2026-11-01 00:00:00", end_time="2026-11-30 12:00:00")
    assert fixed.fixed
    assert not QueryWindow(days="7").fixed
    for bad in [(7, "2026-11-01", "2026-11-02"), (None, "2026-11-01", None), (0, None, None),
                (None, "2026-11-02", "2026-11-01"), (None, "yesterday", "2026-11-01"),
                (None, "2026-11-01T00:00+08:00", "2026-11-02")]:  # fmt: skip
        with pytest.raises(ConfigError):
            query_window(*bad)


def test_customer_ids_from_flags_and_file(tmp_path: Path) -> None:
    file = tmp_path / "customers.txt"
    file.write_text("c2\n\n# a comment\n c3 \nc1\n", encoding="utf-8")
    assert customer_ids(["c1", "c2"], file) == ["c1", "c2", "c3"]
    with pytest.raises(ConfigError, match="no customer ids"):
        customer_ids([], None)
    with pytest.raises(ConfigError, match="cannot read"):
        customer_ids([], tmp_path / "missing.txt")


async def test_the_pacer_spaces_starts_by_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    pacer = Pacer(4.0, clock=lambda: clock[0])
    for _ in range(5):
        await pacer.wait()  # all at the same instant: booked 0.25 s apart
    assert slept == pytest.approx([0.25, 0.5, 0.75, 1.0])
    clock[0] = 200.0  # long idle: no burst is owed, the next start is immediate
    slept.clear()
    await pacer.wait()
    await pacer.wait()
    assert slept == pytest.approx([0.25])
    unlimited = Pacer(0)
    await unlimited.wait()
    assert slept == pytest.approx([0.25])
