"""Each processor's own bounds (`processors._bounds`), through its handler as the engine runs
it (`LocalRun`: the engine's stores and per-record rollback): an input that would make an
id, a room, a member, or a reply grow past its limit raises `StateBoundError` (the engine
sends it to the DLQ) and leaves every store as it was; the same input within the limit is
applied. The real-broker versions: tests/integration/test_poison_bounds.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processors import feedback, membership, normalizer
from processors._bounds import MAX_ID_CHARS, StateBoundError
from processors.engine.testing import LocalRun, input_record
from schemas.registry import (
    RAW_INSIGHT_FEEDBACK,
    RAW_YUJU_CHAT_RECORD,
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
)

T0 = 1_790_000_000_000


def feed(run: LocalRun, topic: str, body: Any, offset: int = 0) -> list[Any]:
    return run.feed(
        input_record(
            topic,
            orjson.dumps(body),
            headers={"tenant": "acme", "ce_id": f"id-{offset}"},
            offset=offset,
            timestamp_ms=T0 + offset,
        )
    )


def contents(run: LocalRun) -> dict[str, dict[str, Any]]:
    return {name: dict(store.items()) for name, store in run.stores.items()}


def refused(run: LocalRun, topic: str, body: Any, match: str, offset: int = 99) -> None:
    before = contents(run)
    with pytest.raises(StateBoundError, match=match):
        feed(run, topic, body, offset)
    assert contents(run) == before


def message(**fields: Any) -> dict[str, Any]:
    return {"data": {"messageId": "m1", "chatId": "c1", "type": 7, "payload": {}, **fields}}


@pytest.mark.parametrize("field", ["messageId", "chatId", "botId", "contactId", "roomId"])
def test_normalizer_refuses_an_overlong_id_on_both_parse_paths(field: str) -> None:
    long_id = "x" * (MAX_ID_CHARS + 1)
    run = LocalRun(normalizer.PROCESSOR)
    refused(run, RAW_YUJU_MESSAGE, message(**{field: long_id}), f"{field} is 257 characters")
    # The model path (a number where a string is expected sends the body there).
    refused(run, RAW_YUJU_MESSAGE, message(**{field: long_id}, isSelf="yes"), f"{field} is 257")
    # At the limit it is a message like any other.
    assert len(feed(run, RAW_YUJU_MESSAGE, message(**{field: "y" * MAX_ID_CHARS}))) == 1


def test_normalizer_refuses_a_chat_record_with_an_overlong_chat_id() -> None:
    entry = {
        "customer_id": "cust",
        "chat_id": "c" * 300,
        "position": 0,
        "window": {"days": "", "start_time": "2026-11-01 00:00:00", "end_time": ""},
        "message": {"content": "hi", "message_type": "AI对话", "sender_type": "用户"},
    }
    refused(LocalRun(normalizer.PROCESSOR), RAW_YUJU_CHAT_RECORD, entry, "chat_id is 300")


def room_event(members: list[str], key: str = "leftMember", **extra: Any) -> dict[str, Any]:
    return {
        "botInfo": {"imBotId": "bot-1"},
        "imRoomId": "R1",
        "timestamp": T0,
        key: [{"imContactId": m} for m in members],
        **extra,
    }


def test_membership_counts_departed_members_in_the_room_bound() -> None:
    run = LocalRun(membership.PROCESSOR)
    feed(run, RAW_YUJU_ROOM_JOIN, room_event(["a", "b"], "joinMembers"))
    limit = membership.MAX_ROOM_ENTRIES
    # Leaves of unknown members are departures to remember: they count.
    too_many = [f"u{i}" for i in range(limit)]
    refused(run, RAW_YUJU_ROOM_LEAVE, room_event(too_many, timestamp=T0 + 1), "entries")
    # Up to the limit, with what the room already holds (two members, maybe the bot), is fine.
    (room,) = (v for k, v in run.stores["rooms"].items() if k.startswith("room:"))
    held = len(room["present"]) + len(room["departed"]) + len(room["bots"])
    fits = too_many[: limit - held]
    assert feed(run, RAW_YUJU_ROOM_LEAVE, room_event(fits, timestamp=T0 + 1), offset=1)
    refused(run, RAW_YUJU_ROOM_LEAVE, room_event(["one-more"], timestamp=T0 + 2), "entries")


def test_membership_refuses_overlong_ids_and_oversized_members() -> None:
    run = LocalRun(membership.PROCESSOR)
    long_id = "x" * (MAX_ID_CHARS + 1)
    refused(run, RAW_YUJU_ROOM_JOIN, room_event([long_id], "joinMembers"), "imContactId is 257")
    refused(run, RAW_YUJU_ROOM_JOIN, room_event(["a"], "joinMembers", imRoomId=long_id), "imRoomId")
    body = room_event([], "joinMembers", botInfo={"imBotId": long_id})
    refused(run, RAW_YUJU_ROOM_JOIN, body, "imBotId is 257")
    big = room_event([], "joinMembers")
    big["joinMembers"] = [{"imContactId": "a", "nickName": "n" * membership.MAX_MEMBER_BYTES}]
    refused(run, RAW_YUJU_ROOM_JOIN, big, "over the limit of 16384")
    assert feed(run, RAW_YUJU_ROOM_JOIN, room_event(["a"], "joinMembers"))


def vote(status: str, nodes: list[str], exec_id: str = "e1") -> dict[str, Any]:
    return {
        "botId": "b1",
        "execId": exec_id,
        "feedbackStatus": status,
        "outputActions": [{"nodeId": n} for n in nodes],
    }


def test_feedback_refuses_a_reply_that_would_count_in_too_many_nodes() -> None:
    run = LocalRun(feedback.PROCESSOR)
    limit = feedback.MAX_NODES_PER_REPLY
    refused(run, RAW_INSIGHT_FEEDBACK, vote("thumb-up", [f"n{i}" for i in range(limit + 1)]), "65")
    first = [f"n{i}" for i in range(limit - 1)]
    assert feed(run, RAW_INSIGHT_FEEDBACK, vote("thumb-up", first))
    # A change of mind naming two new nodes would take the reply to limit + 1: refused, and
    # the reply keeps its state (a later valid change still moves its counts).
    refused(run, RAW_INSIGHT_FEEDBACK, vote("thumb-down", ["new-1", "new-2"]), "65 flow nodes")
    out = feed(run, RAW_INSIGHT_FEEDBACK, vote("thumb-down", ["new-1"]), offset=1)
    assert len(out) == 1 + 3 * (1 + limit)


@pytest.mark.parametrize("field", ["botId", "execId", "messageId", "sessionId", "roomId"])
def test_feedback_refuses_overlong_ids(field: str) -> None:
    body = {**vote("thumb-up", []), field: "x" * (MAX_ID_CHARS + 1)}
    refused(LocalRun(feedback.PROCESSOR), RAW_INSIGHT_FEEDBACK, body, f"{field} is 257")
