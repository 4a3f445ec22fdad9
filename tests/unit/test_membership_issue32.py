"""Issue 32's membership cases (and issue 31's tenant isolation) through the handler as the
engine runs it (`LocalRun`: the engine's stores and per-record rollback). Each failed before
its fix, as noted per test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from processors.engine.testing import LocalRun, input_record
from processors.membership import PROCESSOR
from schemas.cloudevents import format_time, stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from schemas.room import MemberChange, RoomMembership
from schemas.yuju import classify_room

T0 = 1_790_000_000_000
TOPICS = {"join": RAW_YUJU_ROOM_JOIN, "leave": RAW_YUJU_ROOM_LEAVE, "topic": RAW_YUJU_ROOM_TOPIC}


class Room:
    """Callbacks of one room as the ingress publishes them: `ce_id` a hash of the body,
    `ce_time` the receive time; outputs collected."""

    def __init__(self, run: LocalRun | None = None) -> None:
        self.run = run or LocalRun(PROCESSOR)
        self.offset = 0
        self.out: list[Any] = []

    def send(self, body: dict[str, Any], received_ms: int, tenant: str = "acme") -> list[Any]:
        self.offset += 1
        ce_time = format_time(datetime.fromtimestamp(received_ms / 1000, tz=UTC))
        headers = {"ce_id": stable_id(body), "ce_time": ce_time}
        headers["tenant"] = tenant
        out = self.run.feed(
            input_record(
                TOPICS[classify_room(body)],
                orjson.dumps(body),
                offset=self.offset,
                headers=headers,
                timestamp_ms=received_ms,
            )
        )
        self.out += out
        return out

    def snapshot(self, key: str = "acme|R1") -> RoomMembership:
        values = [o.value for o in self.out if o.topic == ROOM_MEMBERSHIP and o.key == key]
        return RoomMembership.model_validate_json(values[-1])


def changes(out: list[Any]) -> list[tuple[str, str, int]]:
    values = [o.value for o in out if o.topic == ROOM_MEMBER_CHANGE]
    assert all(isinstance(v, MemberChange) for v in values)
    return [(v.contact_id, v.change, v.member_count) for v in values]


def event(
    kind: str, *members: str, ts: Any = "string", bot: str = "bot-1", **member: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"botInfo": {"imBotId": bot}, "imRoomId": "R1", "timestamp": ts}
    if kind != "topic":
        key = "joinMembers" if kind == "join" else "leftMember"
        body[key] = [{"imContactId": m, **member} for m in members]
    return body


def ids(snapshot: RoomMembership) -> list[str]:
    return [m.contact_id for m in snapshot.members]


def test_a_platform_retry_of_a_join_after_a_leave_changes_nothing() -> None:
    """The documented sample's `"timestamp":"string"` leaves receive time as the event time;
    before, the join's retry (same body, same `ce_id`, later receive time) won over the
    leave: the member was back and `joined` was emitted twice."""
    room = Room()
    join = event("join", "a", "b")
    assert changes(room.send(join, T0)) == [("a", "joined", 2), ("b", "joined", 2)]
    assert changes(room.send(event("leave", "a"), T0 + 10_000)) == [("a", "left", 1)]
    assert room.send(join, T0 + 20_000) == []  # the retry: nothing
    assert ids(room.snapshot()) == ["b"]
    assert [c for c in changes(room.out) if c[:2] == ("a", "joined")] == [("a", "joined", 2)]
    # A new join (another body) after the leave is applied as before.
    assert changes(room.send(event("join", "a", nickName="back"), T0 + 30_000)) == [
        ("a", "joined", 2)
    ]


def test_one_bad_member_entry_costs_that_entry_only() -> None:
    """Before: a member without `imContactId` failed the ingress's strict check (the whole
    body went to `raw.unrouted.v1`); `leftMember` sent as one object did the same."""
    room = Room()
    body = event("join", "a", "b", ts=T0)
    body["joinMembers"].insert(1, {"nickName": "no id"})
    body["joinMembers"].append("junk")
    assert changes(room.send(body, T0)) == [("a", "joined", 2), ("b", "joined", 2)]
    one = event("leave", ts=T0 + 5)
    one["leftMember"] = {"imContactId": "a"}  # a single object, not a list
    assert changes(room.send(one, T0 + 5)) == [("a", "left", 1)]
    assert ids(room.snapshot()) == ["b"]


def test_bot_in_room_knows_every_hosted_bot_that_reports() -> None:
    """Two hosted bots of the tenant in one room. Before, only member entries flagged
    `isSelf` made a bot known: once bot-1 left, the room said no bot was in it, though
    bot-2 was still there reporting its events."""
    room = Room()
    room.send(event("join", "a", ts=T0, bot="bot-2"), T0)
    room.send(event("join", "bot-1", ts=T0 + 1, isSelf=True), T0 + 1)
    snap = room.send(event("leave", "bot-1", ts=T0 + 2, isSelf=True), T0 + 2)
    assert changes(snap) == [("bot-1", "left", 1)]
    assert room.snapshot().bot_in_room  # bot-2 reports the room: it is in it
    # bot-2 is flagged as a bot when an event names it, by whoever reports it.
    room.send(event("join", "bot-2", ts=T0 + 3, isSelf=False), T0 + 3)
    assert [(m.contact_id, m.is_bot) for m in room.snapshot().members] == [
        ("a", False),
        ("bot-2", True),
    ]
    room.send(event("leave", "bot-2", ts=T0 + 4, bot="bot-2", isSelf=True), T0 + 4)
    assert not room.snapshot().bot_in_room  # now every known bot has left


def test_after_the_bot_leaves_and_rejoins_the_stale_roster_is_not_shown() -> None:
    """While the bot was out nobody saw who came and went. Before, its rejoin showed the
    old roster again as current."""
    room = Room()
    room.send(event("join", "a", "b", ts=T0), T0)
    room.send(event("leave", "bot-1", ts=T0 + 10, isSelf=True), T0 + 10)
    out = room.snapshot()
    assert (out.bot_in_room, ids(out), out.member_count) == (False, ["a", "b"], 2)  # last known
    room.send(event("join", "bot-1", ts=T0 + 20, isSelf=True), T0 + 20)
    back = room.snapshot()
    assert (back.bot_in_room, ids(back), back.member_count) == (True, ["bot-1"], 0)
    changed = room.send(event("join", "c", ts=T0 + 30), T0 + 30)
    assert changes(changed) == [("c", "joined", 1)]
    assert ids(room.snapshot()) == ["bot-1", "c"]
    # A member seen since (here: leaving, then joining again) is current again.
    room.send(event("join", "a", ts=T0 + 40), T0 + 40)
    assert ids(room.snapshot()) == ["a", "bot-1", "c"]


def test_the_bot_does_not_count_in_member_count() -> None:
    """Before, the hosted bot counted: a room of one customer and the bot had 2 members."""
    room = Room()
    out = room.send(event("join", "a", "bot-1", ts=T0, isSelf=False), T0)
    assert changes(out) == [("a", "joined", 1), ("bot-1", "joined", 1)]
    snap = room.snapshot()
    assert (snap.member_count, [m.is_bot for m in snap.members]) == (1, [False, True])


def test_two_tenants_in_one_room_keep_a_view_each() -> None:
    """Before, a room was keyed by `imRoomId` alone: beta's leave and rename changed the
    snapshot of acme's room (issue 31)."""
    room = Room()
    room.send(event("join", "a", "b", ts=T0) | {"topic": "acme's"}, T0)
    room.send(event("leave", "a", ts=T0 + 5, bot="beta-bot") | {"topic": "beta's"}, T0 + 5, "beta")
    acme, beta = room.snapshot("acme|R1"), room.snapshot("beta|R1")
    assert (acme.tenant, acme.topic, ids(acme)) == ("acme", "acme's", ["a", "b"])
    assert (beta.tenant, beta.topic, ids(beta)) == ("beta", "beta's", [])
    assert {o.key for o in room.out} == {"acme|R1", "beta|R1"}
