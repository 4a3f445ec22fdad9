"""Issue 32's normalizer cases (and issue 31's tenant isolation) through the handler as the
engine runs it (`LocalRun`: the engine's stores, retention and rollback), on both parse
paths. Each failed before its fix, as noted per test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.engine.testing import LocalRun, input_record
from processors.normalizer import PROCESSOR
from schemas.chat import ChatMessage
from schemas.chat_record import ChatRecordEntry, QueryWindow
from schemas.cloudevents import format_time, header_map
from schemas.registry import RAW_YUJU_CHAT_RECORD, RAW_YUJU_MESSAGE
from wecom_stream.backfill.records import records_of

HOUR = 3_600_000
T0 = 1_790_000_000_000


def message(message_id: str, **fields: Any) -> dict[str, Any]:
    data = {
        "messageId": message_id,
        "chatId": "chat-1",
        "botId": "b1",
        "contactId": "c1",
        "type": 7,
        "payload": {"text": f"text of {message_id}"},
        "isSelf": False,
        **fields,
    }
    return {"data": data}


class Chat:
    def __init__(self, model_path: bool = False) -> None:
        self.run = LocalRun(PROCESSOR)
        self.offset = 0
        self.model_path = model_path

    def send(self, body: dict[str, Any], at_ms: int, tenant: str = "acme") -> list[ChatMessage]:
        self.offset += 1
        if self.model_path:  # a number as a string sends a body down the model path
            body = {"data": {**body["data"], "source": str(body["data"].get("source", 0))}}
        ce_time = format_time(datetime.fromtimestamp(at_ms / 1000, tz=UTC))
        outs = self.run.feed(
            input_record(
                RAW_YUJU_MESSAGE,
                orjson.dumps(body),
                offset=self.offset,
                headers={"ce_time": ce_time, "tenant": tenant},
                timestamp_ms=at_ms,
            )
        )
        self.run.expire()  # as the engine does at every commit
        return [as_chat(o.value) for o in outs]


def as_chat(value: object) -> ChatMessage:
    if isinstance(value, bytes):
        return ChatMessage.model_validate_json(value)
    assert isinstance(value, ChatMessage)
    return value


@pytest.mark.parametrize("model_path", [False, True])
def test_an_agent_talking_for_25_hours_keeps_the_conversation_human(model_path: bool) -> None:
    """Before: `mode` was written only when it changed and expired 24 h after that write
    (with the dedup retention), so after 24 h of an agent's conversation the customer's
    messages were filed `ai` again."""
    chat = Chat(model_path)
    (agent,) = chat.send(message("m0", isSelf=True, source=1), T0)
    assert (agent.sender_role, agent.channel) == ("agent", "human")
    for hour in range(1, 31):  # an agent and the customer, turn about, for 30 hours
        who = {"isSelf": True, "source": 1} if hour % 2 else {}
        (msg,) = chat.send(message(f"m{hour}", **who), T0 + hour * HOUR)
        assert msg.channel == "human", hour
    # Silent for longer than the mode retention (24 h): the conversation starts over in ai.
    (late,) = chat.send(message("late"), T0 + 30 * HOUR + 25 * HOUR)
    assert late.channel == "ai"


@pytest.mark.parametrize("model_path", [False, True])
def test_a_coworker_in_a_group_is_the_companys_side(model_path: bool) -> None:
    """Before: an employee's message in a group was `direction: inbound`, like a customer's."""
    chat = Chat(model_path)
    (msg,) = chat.send(message("m1", roomId="R1", coworker=True), T0)
    assert (msg.direction, msg.sender_role, msg.channel, msg.coworker) == (
        "outbound",
        "agent",
        "human",
        True,
    )
    (customer,) = chat.send(message("m2", roomId="R1", coworker=False), T0 + 1)
    assert (customer.direction, customer.sender_role) == ("inbound", "customer")


@pytest.mark.parametrize("model_path", [False, True])
def test_the_fields_consumers_join_on_are_kept(model_path: bool) -> None:
    """Before, these appeared nowhere outside `payload`-less raw records."""
    fields = {
        "externalUserId": "wmAbc",
        "roomWecomChatId": "wrChat",
        "contactType": 3,
        "coworker": False,
        "sendBy": "console-9",
        "botWxid": "1688850000000001",
        "botWeixin": "bot-user",
        "avatar": "https://wework.qpic.cn/a/0",
    }
    (msg,) = Chat(model_path).send(message("m1", **fields), T0)
    assert (
        msg.external_user_id,
        msg.room_wecom_chat_id,
        msg.contact_type,
        msg.coworker,
        msg.send_by,
        msg.bot_wxid,
        msg.bot_weixin,
        msg.avatar_url,
    ) == tuple(fields.values())
    # The enterprise v2 body names the bot's WeCom user id `botUserId`.
    flat = message("m2")["data"] | {"botUserId": "v2-bot-user"}
    (v2,) = Chat(model_path).send({"data": flat}, T0)
    assert v2.bot_weixin == "v2-bot-user"


def test_two_tenants_with_one_message_id_each_get_their_message() -> None:
    """Before, `seen` ignored the tenant: beta's message with the `messageId` of acme's
    later message made acme's message a "retry" that never appeared (issue 31)."""
    chat = Chat()
    (beta,) = chat.send(message("m-shared", chatId="beta-chat"), T0, tenant="beta")
    (acme,) = chat.send(message("m-shared", chatId="acme-chat"), T0 + 1, tenant="acme")
    assert (beta.tenant, beta.conversation_id) == ("beta", "beta-chat")
    assert (acme.tenant, acme.conversation_id) == ("acme", "acme-chat")
    assert chat.send(message("m-shared", chatId="acme-chat"), T0 + 2) == []  # acme's retry


def test_a_live_and_a_backfilled_copy_of_one_message_are_two_messages_told_apart() -> None:
    """Decided (docs/platform.md, "Chat record query API"): a chat record has no id and no
    time, and its `chat_id`/`customer_id` are the chat-record API's own ids, not a callback's
    `chatId`/`contactId`; nothing joins the two, so the same message seen live and
    backfilled is two `ChatMessage`s, `origin` telling them apart, with distinct `ce_id`s."""
    chat = Chat()
    (live,) = chat.send(message("m1", payload={"text": "你好"}, externalUserId="wmAbc"), T0)
    entry = {
        "chat_id": "5c82cf0c-8db0-4bcd-94de-dece5c011f8b-258262",
        "messages": [{"content": "你好", "message_type": "AI对话", "sender_type": "用户"}],
    }
    window = QueryWindow(start_time="2026-09-01 00:00:00", end_time="2026-10-01 00:00:00")
    (raw,) = records_of(
        "57a286a608894aa7b26a9e589f4d3333",
        [entry],
        window,
        fetched_at=datetime.fromtimestamp(T0 / 1000 + 60, tz=UTC),
        tenant="acme",
    )
    ChatRecordEntry.model_validate_json(raw.value)
    outs = chat.run.feed(
        input_record(RAW_YUJU_CHAT_RECORD, raw.value, headers=header_map(raw.headers), offset=99)
    )
    (history,) = (as_chat(o.value) for o in outs)
    assert (live.origin, history.origin) == ("callback", "chat_record")
    assert (live.text, history.text) == ("你好", "你好")
    assert history.conversation_id != live.conversation_id
    assert history.contact_id == "57a286a608894aa7b26a9e589f4d3333"
    assert {dict(o.headers)["ce_id"] for o in outs} != {f"acme|{live.message_id}".encode()}
